package engine

import "time"

// SetFaultHook makes every upgrade phase of e end with hook: an error it
// returns fails the phase. Tests use it to inject failures and crashes.
func SetFaultHook(e *Engine, hook func(Phase) error) { e.faultHook = hook }

// SnapshotDir is snapshotDir, for its unit test.
var SnapshotDir = snapshotDir

// SetPullProgressInterval sets how often a pull in progress is logged.
func SetPullProgressInterval(d time.Duration) { pullProgressInterval = d }

// CredentialsFor is credentialsFor, for its unit test.
var CredentialsFor = credentialsFor
