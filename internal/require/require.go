// Package require checks the dependencies a constructor was given, so
// that a service missing one fails when it is built, with one message
// naming everything that is missing, rather than on its first request.
package require

import (
	"fmt"
	"slices"
	"strings"
)

// Deps returns an error naming, in alphabetical order, every dependency of
// owner whose entry in present is false ("mfa: missing Jobs, KV"), or nil
// when none is.
func Deps(owner string, present map[string]bool) error {
	var missing []string
	for name, ok := range present {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return fmt.Errorf("%s: missing %s", owner, strings.Join(missing, ", "))
}
