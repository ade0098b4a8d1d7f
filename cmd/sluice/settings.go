package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"
)

// Settings of `sluice serve` come from, in rising precedence: the defaults, a config file
// (--config), the environment (SLUICE_<FLAG>, upper case with dashes as underscores, such as
// SLUICE_DATA_DIR), and the command line.
//
// A config file holds one `flag = value` per line, flag names as on the command line
// without dashes; blank lines and lines starting with # are ignored. A repeatable flag
// (access-key) may appear on several lines.

// envName is the environment variable that mirrors flag name.
func envName(name string) string {
	return "SLUICE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applySettings sets fs's flags from the config file named on the command line or in
// SLUICE_CONFIG, then from the environment; the command line, parsed after, overrides both.
func applySettings(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	path := getenv(envName("config"))
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return fmt.Errorf("--config needs a file")
			}
			value = args[i+1]
		}
		path = value
	}
	if path != "" {
		if err := applyConfigFile(fs, path); err != nil {
			return err
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && f.Name != "config" && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %v", envName(f.Name), v, e)
			}
		}
	})
	return err
}

func applyConfigFile(fs *flag.FlagSet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--config: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(value), `"`)
		if !ok || fs.Lookup(name) == nil || name == "config" {
			return fmt.Errorf("%s:%d: want `flag = value` with a flag of sluice serve, got %q", path, n, line)
		}
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("%s:%d: %s: %v", path, n, name, err)
		}
	}
	return sc.Err()
}

// accessKeys is the repeatable --access-key KEY=ACCOUNT flag.
type accessKeys map[string]string

func (a accessKeys) String() string {
	var parts []string
	for k, v := range a {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (a accessKeys) Set(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" || len(v) != 12 || strings.Trim(v, "0123456789") != "" {
			return fmt.Errorf("want ACCESS_KEY=ACCOUNT with a 12-digit account, got %q", part)
		}
		a[k] = v
	}
	return nil
}
