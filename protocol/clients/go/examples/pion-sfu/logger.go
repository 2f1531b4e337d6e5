package main

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

var levels = map[string]int32{"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4, "fatal": 5}

// logger writes levelled lines to stderr; the level changes at once with a config.
type logger struct{ level atomic.Int32 }

func newLogger(level string) (*logger, error) {
	l := &logger{}
	if _, ok := levels[level]; !ok {
		return nil, fmt.Errorf("--log-level must be one of trace, debug, info, warn, error, fatal, got %q", level)
	}
	l.setLevel(level)
	return l, nil
}

func (l *logger) setLevel(level string) {
	if v, ok := levels[level]; ok {
		l.level.Store(v)
	}
}

func (l *logger) logf(level string, format string, args ...any) {
	if levels[level] < l.level.Load() {
		return
	}
	fmt.Fprintf(os.Stderr, "%s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), level, fmt.Sprintf(format, args...))
}

func (l *logger) debugf(format string, args ...any) { l.logf("debug", format, args...) }
func (l *logger) infof(format string, args ...any)  { l.logf("info", format, args...) }
func (l *logger) warnf(format string, args ...any)  { l.logf("warn", format, args...) }
