package ratepolicy

import (
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// readmeBlock is what the README shows of the policy: the route groups,
// the built-in limits and the example file.
func readmeBlock() string {
	var b strings.Builder
	b.WriteString("Route groups a rule may name:\n\n| Group | Requests |\n|-------|----------|\n")
	for _, g := range Groups {
		b.WriteString("| `" + g + "` | " + strings.ReplaceAll(GroupDoc(g), "|", "\\|") + " |\n")
	}
	b.WriteString("\nThe built-in policy, applied by the features on valid requests (`GATEHOUSE_REGISTER_LIMIT_PER_IP`, `GATEHOUSE_EMAIL_LIMIT_PER_ADDRESS` and `GATEHOUSE_EMAIL_LIMIT_PER_IP` set the first three):\n\n")
	b.WriteString(Default(Builtin()).Table())
	b.WriteString("\nAn example file (`GATEHOUSE_RATE_LIMITS_FILE`):\n\n```yaml\n")
	b.WriteString(ExampleYAML)
	b.WriteString("```\n")
	return b.String()
}

// TestREADMEPolicy keeps the README's rate-limit block equal to the code;
// run `go test ./internal/ratepolicy -run README -update` to regenerate it.
func TestREADMEPolicy(t *testing.T) {
	testenv.MarkedBlock(t, "../../README.md", "<!-- rate-limits:start -->\n", "<!-- rate-limits:end -->", readmeBlock(), *update,
		"go test ./internal/ratepolicy -run README -update")
}
