package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

//go:embed report.md.tmpl
var reportTemplate string

// Targets.
const (
	targetFloorRatio    = 1.3
	targetReplaceRatio  = 0.5
	targetPlanRatio     = 1.5
	targetRSSMiB        = 100
	targetParallelRatio = 1.2
	// The remote host, at remoteRTT, against the local one.
	targetRemoteDowntimeRatio = 1.1
	targetRemotePlanRatio     = 1.5
)

// report is everything BENCHMARKS.md is made from.
type report struct {
	Config      config `json:"-"`
	Cmdline     string
	Namespace   string
	Quick       bool
	Start       time.Time
	Duration    time.Duration
	Machine     machine
	LoadBefore  string
	LoadAfter   string
	OthersStart []string
	OthersEnd   []string

	Downtime *downtimeResult
	Plan     *planResult
	Parallel *parallelResult
	Pull     *pullResult
	Stage    *stageResult
	Remote   *remoteResult

	ChartLink string
}

// target is one row of the summary.
type target struct {
	Name, Goal, Measured string
	Met                  bool
	Skipped              bool
}

// Targets evaluates every target.
func (r *report) Targets() []target {
	var out []target
	if d := r.Downtime; d != nil {
		for _, size := range d.Sizes {
			in, fl, rp := d.Stats(stInPlace, size), d.Stats(stFloor, size), d.Stats(stReplace, size)
			if in.N == 0 || fl.N == 0 || rp.N == 0 {
				out = append(out, target{Name: fmt.Sprintf("downtime at %d MB", size), Goal: "measured", Measured: "not measured", Skipped: true})
				continue
			}
			rf := ratio(in.Median, fl.Median)
			out = append(out, target{
				Name: fmt.Sprintf("in-place downtime vs restart floor, %d MB", size), Goal: fmt.Sprintf("≤ %.1f×", targetFloorRatio),
				Measured: fmt.Sprintf("%.2f× (%s / %s ms)", rf, ms(in.Median), ms(fl.Median)), Met: rf <= targetFloorRatio,
			})
			rr := ratio(in.Median, rp.Median)
			out = append(out, target{
				Name: fmt.Sprintf("in-place downtime vs replacement, %d MB", size), Goal: fmt.Sprintf("≤ %.1f×", targetReplaceRatio),
				Measured: fmt.Sprintf("%.2f× (%s / %s ms)", rr, ms(in.Median), ms(rp.Median)), Met: rr <= targetReplaceRatio,
			})
		}
	}
	if p := r.Plan; p != nil {
		if len(p.Pouch) > 0 && len(p.Data) > 0 {
			out = append(out, target{
				Name: fmt.Sprintf("plan of %d containers vs %d terraform_data", p.Count, p.Count), Goal: fmt.Sprintf("≤ %.1f×", targetPlanRatio),
				Measured: fmt.Sprintf("%.2f× (%s / %s s)", p.Ratio(), secs(p.PouchStats().Median), secs(p.DataStats().Median)),
				Met:      p.Ratio() <= targetPlanRatio,
			})
		} else {
			out = append(out, target{Name: "plan at scale", Goal: "measured", Measured: "not measured", Skipped: true})
		}
		if len(p.RSSKiB) > 0 {
			out = append(out, target{
				Name: "provider peak RSS during the plan", Goal: fmt.Sprintf("≤ %d MiB", targetRSSMiB),
				Measured: fmt.Sprintf("%.1f MiB", p.PeakRSSMiB()), Met: p.PeakRSSMiB() <= targetRSSMiB,
			})
		}
	}
	if q := r.Parallel; q != nil {
		if len(q.Many) > 0 && len(q.One) > 0 {
			out = append(out, target{
				Name: fmt.Sprintf("%d upgrades, -parallelism=%d", q.Count, q.Parallelism),
				Goal: fmt.Sprintf("≤ %.1f × %d × one upgrade", targetParallelRatio, q.Waves()),
				Measured: fmt.Sprintf("%.2f× (%s s vs %d × %s s)", q.Ratio(), secs(q.ManyStats().Median), q.Waves(),
					secs(q.OneStats().Median)),
				Met: q.Ratio() <= targetParallelRatio,
			})
		}
		out = append(out, target{
			Name: "parallel upgrades: no error, nothing leaked", Goal: "no error; 1 active snapshot per container; 0 leases",
			Measured: fmt.Sprintf("%d errors; %d containers, %d active snapshots, %d leases, %d problems",
				len(q.Errors), q.Containers, q.Active, q.Leases, len(q.Mismatched)),
			Met: len(q.Errors) == 0 && q.Clean() && q.Containers > 0,
		})
	}
	if r.Pull != nil {
		out = append(out, r.Pull.targets()...)
	}
	if r.Stage != nil {
		out = append(out, r.Stage.targets()...)
	}
	if r.Remote != nil {
		out = append(out, r.Remote.targets()...)
	}
	return out
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// AllMet tells whether every measured target is met.
func (r *report) AllMet() bool {
	for _, t := range r.Targets() {
		if !t.Met {
			return false
		}
	}
	return true
}

// downtimeRow is one row of the downtime table.
type downtimeRow struct {
	Size                        int64
	Strategy                    string
	Median, Min, Max, Call      string
	N                           int
	VsFloor, VsReplace, VsPouch string
}

func (r *report) DowntimeRows() []downtimeRow {
	d := r.Downtime
	var rows []downtimeRow
	for _, size := range d.Sizes {
		fl, rp := d.Stats(stFloor, size), d.Stats(stReplace, size)
		for _, st := range strategyOrder {
			s := d.Stats(st, size)
			if s.N == 0 {
				continue
			}
			row := downtimeRow{Size: size, Strategy: strategyLabels[st], Median: ms(s.Median), Min: ms(s.Min), Max: ms(s.Max), N: s.N,
				Call: ms(summarize(d.Calls[st][size]).Median)}
			if fl.N > 0 {
				row.VsFloor = fmt.Sprintf("%.2f×", ratio(s.Median, fl.Median))
			}
			if rp.N > 0 {
				row.VsReplace = fmt.Sprintf("%.2f×", ratio(s.Median, rp.Median))
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// phaseTable is the phase breakdown of one strategy: one row per phase,
// one column per size (medians in ms).
type phaseTable struct {
	Strategy string
	Sizes    []int64
	Rows     []phaseRow
}

type phaseRow struct {
	Phase  string
	Values []string
}

func (r *report) PhaseTables() []phaseTable {
	d := r.Downtime
	var out []phaseTable
	for _, st := range strategyOrder {
		if len(d.PhaseOrder[st]) == 0 {
			continue
		}
		t := phaseTable{Strategy: strategyLabels[st], Sizes: d.Sizes}
		for _, name := range d.PhaseOrder[st] {
			row := phaseRow{Phase: name}
			for _, size := range d.Sizes {
				s := summarize(d.Phases[st][size][name])
				if s.N == 0 {
					row.Values = append(row.Values, "–")
				} else {
					row.Values = append(row.Values, ms(s.Median))
				}
			}
			t.Rows = append(t.Rows, row)
		}
		out = append(out, t)
	}
	return out
}

// phaseMedian is the median of one phase of a strategy at a size.
func (r *report) phaseMedian(st string, size int64, name string) time.Duration {
	return summarize(r.Downtime.Phases[st][size][name]).Median
}

// Findings explains, from the measurements, the targets that were missed.
func (r *report) Findings() []string {
	var out []string
	if d := r.Downtime; d != nil {
		for _, size := range d.Sizes {
			in, fl, rp := d.Stats(stInPlace, size), d.Stats(stFloor, size), d.Stats(stReplace, size)
			if in.N == 0 || fl.N == 0 || rp.N == 0 {
				continue
			}
			if ratio(in.Median, fl.Median) > targetFloorRatio {
				kill := r.phaseMedian(stInPlace, size, "kill, wait, delete task")
				swap := r.phaseMedian(stInPlace, size, "swap (containerd update)")
				start := r.phaseMedian(stInPlace, size, "new task, start")
				pre := r.phaseMedian(stInPlace, size, "journal, unsupervise, load task")
				fstop := r.phaseMedian(stFloor, size, "stop (kill, wait, delete task)")
				fstart := r.phaseMedian(stFloor, size, "start (new task, start)")
				out = append(out, fmt.Sprintf("**%d MB, in-place vs floor (%.2f×).** The in-place outage is %s ms against %s ms. "+
					"Inside it the engine spends %s ms killing and deleting the task (floor: %s ms), %s ms in the swap update "+
					"(the floor has none) and %s ms creating and starting the new task (floor: %s ms); just before it, "+
					"%s ms go to the journal write, unsupervise and task load while the old task still serves. "+
					"The excess over the floor is %s ms.",
					size, ratio(in.Median, fl.Median), ms(in.Median), ms(fl.Median), ms(kill), ms(fstop), ms(swap), ms(start), ms(fstart), ms(pre),
					ms(in.Median-fl.Median)))
			}
			if ratio(in.Median, rp.Median) > targetReplaceRatio {
				out = append(out, fmt.Sprintf("**%d MB, in-place vs replacement (%.2f×).** In-place %s ms against replacement %s ms "+
					"(engine.Delete %s ms; engine.Create: pull, unpack and snapshot %s ms, network and task start %s ms).",
					size, ratio(in.Median, rp.Median), ms(in.Median), ms(rp.Median),
					ms(r.phaseMedian(stReplace, size, phaseReplaceDelete)), ms(r.phaseMedian(stReplace, size, phaseReplacePull)),
					ms(r.phaseMedian(stReplace, size, phaseReplaceStart))))
			}
		}
	}
	if p := r.Plan; p != nil && len(p.Pouch) > 0 && len(p.Data) > 0 {
		if p.Ratio() > targetPlanRatio {
			f := fmt.Sprintf("**Plan at scale (%.2f×).** %d pouch_container plan in %s s against %s s for terraform_data: "+
				"%s ms per container above the built-in resource.", p.Ratio(), p.Count, secs(p.PouchStats().Median), secs(p.DataStats().Median),
				ms((p.PouchStats().Median-p.DataStats().Median)/time.Duration(p.Count)))
			if len(p.Floor) > 0 {
				f += fmt.Sprintf(" The control provider's %d floor_item resources, which do nothing, plan in %s s (%.2f× terraform_data).",
					p.Count, secs(p.FloorStats().Median), p.FloorRatio())
			}
			out = append(out, f)
		}
		if len(p.RSSKiB) > 0 && p.PeakRSSMiB() > targetRSSMiB {
			out = append(out, fmt.Sprintf("**Provider RSS (%.1f MiB).** Above the %d MiB target.", p.PeakRSSMiB(), targetRSSMiB))
		}
	}
	if q := r.Parallel; q != nil && len(q.Many) > 0 && len(q.One) > 0 && q.Ratio() > targetParallelRatio {
		out = append(out, fmt.Sprintf("**Parallel upgrades (%.2f×).** %d upgrades took %s s; %d waves of one upgrade (%s s) would be %s s.",
			q.Ratio(), q.Count, secs(q.ManyStats().Median), q.Waves(), secs(q.OneStats().Median),
			secs(time.Duration(q.Waves())*q.OneStats().Median)))
		if len(q.EngineMany) > 0 && len(q.EngineOne) > 0 {
			em, eo := q.EngineManyStats().Median, q.EngineOneStats().Median
			out = append(out, fmt.Sprintf("**Parallel upgrades without Terraform.** Through engine.Update, %d upgrades %d at a time took %s s "+
				"against %d × %s s for one alone (%.2f×); Terraform added %s s to a 1-container upgrade (%s s apply against %s s engine.Update).",
				q.Count, q.Parallelism, secs(em), q.Waves(), secs(eo), float64(em)/(float64(q.Waves())*float64(eo)),
				secs(q.OneStats().Median-eo), secs(q.OneStats().Median), secs(eo)))
		}
	}
	if r.Pull != nil {
		out = append(out, r.Pull.findings()...)
	}
	if r.Stage != nil {
		out = append(out, r.Stage.findings()...)
	}
	if r.Remote != nil {
		out = append(out, r.Remote.findings()...)
	}
	return out
}

// loadReport reads the results an earlier run saved.
func loadReport(path string) (*report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// write renders the chart and the report, and saves the results as JSON
// (results.json beside the chart) so that the report can be written again
// with -render.
func (r *report) write(out, chart string) error {
	if err := os.MkdirAll(filepath.Dir(chart), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(chart), "results.json"), data, 0o644); err != nil {
		return err
	}
	if r.Downtime != nil && len(r.Downtime.Runs) > 0 {
		if err := r.chart(chart); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		rel, err := filepath.Rel(filepath.Dir(out), chart)
		if err != nil {
			return err
		}
		r.ChartLink = filepath.ToSlash(rel)
	}
	funcs := template.FuncMap{
		"ms": ms, "secs": secs,
		"half": func(d time.Duration) time.Duration { return d / 2 },
		"mib":  func(kib int64) string { return fmt.Sprintf("%.1f", float64(kib)/1024) },
		"join": strings.Join,
		"mark": func(t target) string {
			switch {
			case t.Skipped:
				return "not measured"
			case t.Met:
				return "**met**"
			}
			return "**missed**"
		},
		"durs": func(ds []time.Duration) string {
			var s []string
			for _, d := range ds {
				s = append(s, secs(d))
			}
			return strings.Join(s, ", ")
		},
		"label": func(st string) string { return strategyLabels[st] },
		"date":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
		"round": func(d time.Duration) string { return d.Round(time.Second).String() },
	}
	tmpl, err := template.New("report").Funcs(funcs).Parse(reportTemplate)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, r); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// chart plots the median downtime against the image size for each
// strategy, with the minimum and maximum as error bars.
func (r *report) chart(path string) error {
	d := r.Downtime
	p := plot.New()
	p.Title.Text = "Downtime of an image upgrade (median, min–max)"
	p.X.Label.Text = "new image size (MB)"
	p.Y.Label.Text = "downtime (ms)"
	p.Y.Min = 0
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	for _, s := range d.Sizes {
		ticks = append(ticks, plot.Tick{Value: float64(s), Label: fmt.Sprint(s)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	lo, hi := float64(d.Sizes[0]), float64(d.Sizes[0])
	for _, s := range d.Sizes {
		lo, hi = min(lo, float64(s)), max(hi, float64(s))
	}
	p.X.Min, p.X.Max = lo/1.6, hi*1.6
	p.Legend.Top = true
	p.Legend.Left = false
	colors := []color.Color{
		color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff},
		color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
		color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	}
	shapes := []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{}}
	ymax := 0.0
	for i, st := range strategyOrder {
		var pts plotter.XYs
		var errs plotter.YErrors
		for _, size := range d.Sizes {
			s := d.Stats(st, size)
			if s.N == 0 {
				continue
			}
			// Spread the strategies a little around each size so that the
			// error bars do not overlap.
			x := float64(size) * (1 + 0.06*float64(i-1))
			y := msf(s.Median)
			pts = append(pts, plotter.XY{X: x, Y: y})
			errs = append(errs, struct{ Low, High float64 }{y - msf(s.Min), msf(s.Max) - y})
			ymax = max(ymax, msf(s.Max))
		}
		if len(pts) == 0 {
			continue
		}
		line, scatter, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color = colors[i]
		line.Width = vg.Points(1.5)
		scatter.Color = colors[i]
		scatter.Shape = shapes[i]
		scatter.Radius = vg.Points(3)
		bars, err := plotter.NewYErrorBars(struct {
			plotter.XYs
			plotter.YErrors
		}{pts, errs})
		if err != nil {
			return err
		}
		bars.Color = colors[i]
		p.Add(line, scatter, bars)
		p.Legend.Add(strategyShort[st], line, scatter)
	}
	p.Y.Max = ymax * 1.6
	p.Add(plotter.NewGrid())
	return p.Save(8*vg.Inch, 4.5*vg.Inch, path)
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
