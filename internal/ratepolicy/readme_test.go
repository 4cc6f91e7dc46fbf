package ratepolicy

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readmeBlock is what the README shows of the policy: the route groups,
// the built-in limits and the example file.
func readmeBlock() string {
	var b strings.Builder
	b.WriteString("Route groups a rule may name:\n\n| Group | Requests |\n|-------|----------|\n")
	for _, g := range Groups {
		b.WriteString("| `" + g + "` | " + strings.ReplaceAll(GroupDoc(g), "|", "\\|") + " |\n")
	}
	b.WriteString("\nThe built-in limits, applied by the features themselves on valid requests only (`GATEHOUSE_REGISTER_LIMIT_PER_IP`, `GATEHOUSE_EMAIL_LIMIT_PER_ADDRESS` and `GATEHOUSE_EMAIL_LIMIT_PER_IP` set the first three):\n\n")
	b.WriteString(Default(Builtin()).Table())
	b.WriteString("\nAn example file (`GATEHOUSE_RATE_LIMITS_FILE`):\n\n```yaml\n")
	b.WriteString(ExampleYAML)
	b.WriteString("```\n")
	return b.String()
}

// TestREADMEPolicy keeps the README's rate-limit block equal to the code;
// run `go test ./internal/ratepolicy -run README -update` to regenerate it.
func TestREADMEPolicy(t *testing.T) {
	const start, end = "<!-- rate-limits:start -->\n", "<!-- rate-limits:end -->"
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, start), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("README.md lacks the rate-limits markers")
	}
	want := readmeBlock()
	if got := s[i+len(start) : j]; got != want {
		if *update {
			if err := os.WriteFile("../../README.md", []byte(s[:i+len(start)]+want+s[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("README.md rate-limit block is out of date; run go test ./internal/ratepolicy -run README -update\n%s", cmp.Diff(want, got))
	}
}
