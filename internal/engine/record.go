package engine

import (
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/typeurl/v2"
)

// recordExtension is the container extension holding pouch's record.
const recordExtension = "io.pouch.record"

// record is what pouch keeps on each container it manages: what the user
// asked for (kept apart from what the image provided, so that image defaults
// never read back as user settings) and which image digest the container runs.
type record struct {
	Spec         ContainerSpec `json:"spec"`
	ImageDigest  string        `json:"image_digest"`
	Network      networkState  `json:"network"`
	ImageVolumes []ImageVolume `json:"image_volumes,omitempty"`
	Revisions    []revision    `json:"revisions,omitempty"`
	// SecretEnvKeys name the task's secret variables, whose values are in
	// the runtime spec only.
	SecretEnvKeys []string `json:"secret_env_keys,omitempty"`
}

func init() {
	typeurl.Register(&record{}, "io.pouch", "record", "v1")
}

// withRecord stores rec on the container record c.
func withRecord(c *containers.Container, rec record) error {
	anyRec, err := typeurl.MarshalAny(&rec)
	if err != nil {
		return fmt.Errorf("encode pouch record: %w", err)
	}
	if c.Extensions == nil {
		c.Extensions = map[string]typeurl.Any{}
	}
	c.Extensions[recordExtension] = anyRec
	return nil
}

// readRecord returns the record on c; ok is false for containers that pouch
// did not create.
func readRecord(c containers.Container) (rec record, ok bool, err error) {
	anyRec, ok := c.Extensions[recordExtension]
	if !ok {
		return record{}, false, nil
	}
	if err := json.Unmarshal(anyRec.GetValue(), &rec); err != nil {
		return record{}, true, fmt.Errorf("decode pouch record of %s: %w", c.ID, err)
	}
	return rec, true, nil
}
