package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// recLogger is the engine's Logger: it records every message with its
// time, so that the phases of an engine call can be timed.
type recLogger struct {
	mu   sync.Mutex
	msgs []logMsg
}

type logMsg struct {
	at        time.Time
	msg       string
	container string
}

func (l *recLogger) Debug(_ context.Context, msg string, fields map[string]any) { l.add(msg, fields) }
func (l *recLogger) Info(_ context.Context, msg string, fields map[string]any)  { l.add(msg, fields) }

func (l *recLogger) add(msg string, fields map[string]any) {
	c, _ := fields["container"].(string)
	if c == "" {
		if s, ok := fields["snapshot"].(string); ok {
			c = "snapshot:" + s
		} else if s, ok := fields["image"].(string); ok {
			c = "image:" + s
		}
	}
	l.mu.Lock()
	l.msgs = append(l.msgs, logMsg{at: time.Now(), msg: msg, container: c})
	l.mu.Unlock()
}

// since returns the messages logged from t on.
func (l *recLogger) since(t time.Time) []logMsg {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logMsg
	for _, m := range l.msgs {
		if !m.at.Before(t) {
			out = append(out, m)
		}
	}
	return out
}

// stats are the median, minimum and maximum of a set of durations.
type stats struct {
	N                int
	Median, Min, Max time.Duration
}

func summarize(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{N: len(s), Median: med, Min: s[0], Max: s[len(s)-1]}
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// secs formats a duration in seconds.
func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }
