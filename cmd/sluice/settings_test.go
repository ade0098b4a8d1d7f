package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func settingsFlags() (*flag.FlagSet, *string, *string, *string, accessKeys) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "127.0.0.1:4567", "")
	dir := fs.String("data-dir", "./data", "")
	limits := fs.String("limits", "kinesis", "")
	keys := accessKeys{}
	fs.Var(keys, "access-key", "")
	fs.String("config", "", "")
	return fs, addr, dir, limits, keys
}

func TestSettingsPrecedence(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "sluice.conf")
	os.WriteFile(cfg, []byte("# a comment\n\naddr = 127.0.0.1:9000\ndata-dir = \"/from/file\"\nlimits = off\naccess-key = AKIDA=111111111111\n"), 0o644)
	env := map[string]string{"SLUICE_DATA_DIR": "/from/env", "SLUICE_LIMITS": "scaled:2"}
	fs, addr, dir, limits, keys := settingsFlags()
	args := []string{"--config", cfg, "--limits", "scaled:3"}
	if err := applySettings(fs, args, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if *addr != "127.0.0.1:9000" || *dir != "/from/env" || *limits != "scaled:3" || keys["AKIDA"] != "111111111111" {
		t.Fatalf("addr %s (want the file's), data-dir %s (want the environment's), limits %s (want the command line's), keys %v",
			*addr, *dir, *limits, keys)
	}
	// SLUICE_CONFIG names the file when the command line does not.
	fs, addr, _, _, _ = settingsFlags()
	if err := applySettings(fs, nil, func(k string) string { return map[string]string{"SLUICE_CONFIG": cfg}[k] }); err != nil || *addr != "127.0.0.1:9000" {
		t.Fatalf("SLUICE_CONFIG: addr %s, %v", *addr, err)
	}
}

func TestSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := map[string]string{
		"unknown flag":   "colour = blue\n",
		"no equals sign": "addr\n",
		"bad access key": "access-key = AKID=12\n",
	}
	for name, content := range bad {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		os.WriteFile(p, []byte(content), 0o644)
		fs, _, _, _, _ := settingsFlags()
		if err := applySettings(fs, []string{"--config=" + p}, func(string) string { return "" }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	fs, _, _, _, _ := settingsFlags()
	if err := applySettings(fs, []string{"--config", filepath.Join(dir, "missing")}, func(string) string { return "" }); err == nil {
		t.Error("a missing config file was accepted")
	}
	fs, _, _, _, _ = settingsFlags()
	if err := applySettings(fs, nil, func(k string) string { return map[string]string{"SLUICE_ACCESS_KEY": "nonsense"}[k] }); err == nil {
		t.Error("a bad SLUICE_ACCESS_KEY was accepted")
	}
}
