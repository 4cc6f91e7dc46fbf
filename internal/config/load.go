package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"
)

// Source says where settings come from. Zero values mean "none".
type Source struct {
	// File is an optional YAML (.yaml, .yml) or TOML (.toml) config file.
	File string
	// Getenv looks up an environment variable.
	Getenv func(string) string
	// Environ lists the environment as KEY=value pairs, to spot unknown
	// GATEHOUSE_ variables (likely typos).
	Environ []string
}

// Error lists every invalid setting, one per line.
type Error struct{ Problems []string }

func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

// Load builds the configuration from defaults, the file, the environment and
// _FILE secrets, validates it and returns it with warnings (e.g. unknown
// variables). On any problem it returns an *Error naming every bad setting.
func Load(src Source) (*Config, []string, error) {
	getenv := src.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var problems, warnings []string
	c := &Config{}
	fields := Fields()
	for _, fd := range fields {
		if err := c.set(fd, fd.Default); err != nil {
			return nil, nil, fmt.Errorf("config: bad default for %s: %v", fd.Var, err)
		}
	}

	if src.File != "" {
		values, err := readFile(src.File)
		if err != nil {
			return nil, nil, &Error{Problems: []string{"config file " + src.File + ": " + err.Error()}}
		}
		byKey := map[string]Field{}
		for _, fd := range fields {
			byKey[fd.Key] = fd
		}
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fd, ok := byKey[k]
			if !ok && strings.HasPrefix(k, "social_") {
				raw, err := fileValueString(values[k])
				if err != nil {
					problems = append(problems, fmt.Sprintf("config file %s: %s: %v", src.File, k, err))
					continue
				}
				if c.Social.Providers == nil {
					c.Social.Providers = map[string]string{}
				}
				c.Social.Providers[Prefix+strings.ToUpper(k)] = raw
				continue
			}
			if !ok {
				problems = append(problems, fmt.Sprintf("config file %s: unknown setting %q", src.File, k))
				continue
			}
			raw, err := fileValueString(values[k])
			if err == nil {
				err = c.set(fd, raw)
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s (%s in %s): %v", fd.Var, k, src.File, err))
			}
		}
	}

	for _, fd := range fields {
		raw, fromFile := getenv(fd.Var), getenv(fd.Var+"_FILE")
		if raw != "" && fromFile != "" {
			problems = append(problems, fmt.Sprintf("%s: set either %s or %s_FILE, not both", fd.Var, fd.Var, fd.Var))
			continue
		}
		if fromFile != "" {
			b, err := os.ReadFile(fromFile)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s_FILE: cannot read %s: %v", fd.Var, fromFile, errors.Unwrap(err)))
				continue
			}
			raw = strings.TrimRight(string(b), "\r\n")
			if raw == "" {
				problems = append(problems, fmt.Sprintf("%s_FILE: %s is empty", fd.Var, fromFile))
				continue
			}
		}
		if raw == "" {
			continue
		}
		if err := c.set(fd, raw); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", fd.Var, err))
		}
	}

	for _, kv := range src.Environ {
		name, value, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, Prefix+"SOCIAL_") {
			if c.Social.Providers == nil {
				c.Social.Providers = map[string]string{}
			}
			c.Social.Providers[name] = value
		}
	}

	known := map[string]bool{}
	for _, fd := range fields {
		known[fd.Var], known[fd.Var+"_FILE"] = true, true
	}
	for _, kv := range src.Environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, Prefix) && !known[name] && !strings.HasPrefix(name, Prefix+"TEST_") && !strings.HasPrefix(name, Prefix+"SOCIAL_") && name != Prefix+"CONFIG" {
			warnings = append(warnings, fmt.Sprintf("%s is not a Gatehouse setting and is ignored", name))
		}
	}

	problems = append(problems, c.problems()...)
	if len(problems) > 0 {
		return nil, warnings, &Error{Problems: problems}
	}
	return c, warnings, nil
}

func readFile(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	values := map[string]any{}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		dec := yaml.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&values); err != nil && err.Error() != "EOF" {
			return nil, fmt.Errorf("invalid YAML: %v", err)
		}
	case ".toml":
		if _, err := toml.Decode(string(b), &values); err != nil {
			return nil, fmt.Errorf("invalid TOML: %v", err)
		}
	default:
		return nil, fmt.Errorf("unknown format %q (want .yaml, .yml or .toml)", filepath.Ext(path))
	}
	return values, nil
}

// fileValueString turns a decoded YAML/TOML value into the string syntax the
// environment variables use, so that both go through one parser.
func fileValueString(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool, int, int64, uint64, float64:
		return fmt.Sprint(x), nil
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, err := fileValueString(e)
			if err != nil {
				return "", err
			}
			if strings.Contains(s, ",") {
				return "", fmt.Errorf("list entry %q must not contain a comma", s)
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	default:
		return "", fmt.Errorf("unsupported value of type %T", v)
	}
}
