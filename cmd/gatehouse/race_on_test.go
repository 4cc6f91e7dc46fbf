//go:build race

package main

// raceEnabled: the tests run with -race, and build the binary with it
// too, so that the build reuses the packages the test run compiled.
const raceEnabled = true
