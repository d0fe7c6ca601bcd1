//go:build race

package jsntest

func init() { raceEnabled = true }
