package deploy

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// The machines this project is developed and tested on have no Docker engine, so no image is built
// here. Instead every Dockerfile is parsed with BuildKit's own parser and instruction reader (what
// `docker build` runs first) with its build checks (lint rules) turned into failures, and the
// stages the compose file and the Kubernetes manifests use are checked for what an operator relies
// on: a non-root user, a health check that runs the image's binary, the ports it listens on.

// dockerfile is one parsed Dockerfile.
type dockerfile struct {
	path     string
	stages   []instructions.Stage
	metaArgs map[string]string // ARG defaults declared before the first FROM
}

func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: parser warning: %s", path, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		t.Errorf("%s:%d: build check %s: %s", path, line, rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	d := dockerfile{path: path, stages: stages, metaArgs: map[string]string{}}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				d.metaArgs[kv.Key] = *kv.Value
			}
		}
	}
	return d
}

func (d dockerfile) stage(name string) (instructions.Stage, bool) {
	for _, s := range d.stages {
		if s.Name == name {
			return s, true
		}
	}
	return instructions.Stage{}, false
}

// image is the stage's base image with the meta ARGs' defaults substituted.
func (d dockerfile) image(s instructions.Stage) string {
	base := s.BaseName
	for k, v := range d.metaArgs {
		base = strings.ReplaceAll(base, "${"+k+"}", v)
		base = strings.ReplaceAll(base, "$"+k, v)
	}
	return base
}

// chain is the stage and the stages of this file it builds on, the stage itself last.
func (d dockerfile) chain(t *testing.T, name string) []instructions.Stage {
	t.Helper()
	var out []instructions.Stage
	for {
		s, ok := d.stage(name)
		if !ok {
			break
		}
		out = append([]instructions.Stage{s}, out...)
		name = s.BaseName
		if len(out) > len(d.stages) {
			t.Fatalf("%s: stages build on each other in a cycle", d.path)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no stage %q", d.path, name)
	}
	return out
}

// imageConfig is what a target's image carries, from the instructions of its stage chain.
type imageConfig struct {
	user        string
	env         map[string]string
	expose      []string
	entrypoint  []string
	shellForm   bool // ENTRYPOINT in shell form: it would need /bin/sh, which the image lacks
	healthcheck []string
	copied      map[string]bool // destinations of COPY
}

func (d dockerfile) config(t *testing.T, target string) imageConfig {
	c := imageConfig{env: map[string]string{}, copied: map[string]bool{}}
	for _, s := range d.chain(t, target) {
		for _, cmd := range s.Commands {
			switch cmd := cmd.(type) {
			case *instructions.UserCommand:
				c.user = cmd.User
			case *instructions.EnvCommand:
				for _, kv := range cmd.Env {
					c.env[kv.Key] = kv.Value
				}
			case *instructions.ExposeCommand:
				c.expose = append(c.expose, cmd.Ports...)
			case *instructions.EntrypointCommand:
				c.entrypoint, c.shellForm = cmd.CmdLine, cmd.PrependShell
			case *instructions.HealthCheckCommand:
				c.healthcheck = cmd.Health.Test
			case *instructions.CopyCommand:
				for _, src := range cmd.SourcePaths {
					c.copied[filepath.Join(cmd.DestPath, filepath.Base(src))] = true
				}
				c.copied[cmd.DestPath] = true
			}
		}
	}
	return c
}

// composeTargets are the root Dockerfile's targets that docker-compose.yml builds, by service.
var composeTargets = map[string]string{
	"collector": "collector", "validator": "validator", "lakewriter": "lakewriter",
	"compactor": "compactor", "topics": "clickstream",
}

func TestDockerfilesParse(t *testing.T) {
	for _, path := range []string{"Dockerfile", "deploy/compose/hive-metastore/Dockerfile", "deploy/compose/spark/Dockerfile"} {
		d := parseDockerfile(t, path)
		for _, s := range d.stages {
			if _, local := d.stage(s.BaseName); local || s.BaseName == "scratch" {
				continue
			}
			if img := d.image(s); !pinned(img) {
				t.Errorf("%s: stage %q builds on %q, which is not pinned to a version", path, s.Name, img)
			}
		}
	}
}

func TestDockerfileTargets(t *testing.T) {
	d := parseDockerfile(t, "Dockerfile")
	settings := knownSettings(t)
	p := loadCompose(t)
	for service, target := range composeTargets {
		if got := p.Services[service].Build.Target; got != target {
			t.Errorf("compose builds %s from target %q, want %q", service, got, target)
		}
	}
	for _, target := range []string{"collector", "validator", "lakewriter", "compactor", "clickstream"} {
		t.Run(target, func(t *testing.T) {
			c := d.config(t, target)
			if c.user == "" || c.user == "root" || c.user == "0" || strings.HasPrefix(c.user, "0:") {
				t.Errorf("runs as %q: images run as a non-root user", c.user)
			}
			binary := "/usr/local/bin/" + target
			if len(c.entrypoint) != 1 || c.entrypoint[0] != binary || c.shellForm {
				t.Errorf("ENTRYPOINT %q, want [%q] in exec form", c.entrypoint, binary)
			}
			if !c.copied[binary] {
				t.Errorf("the entrypoint %s is not copied into the image", binary)
			}
			probe := "-healthcheck"
			if target == "clickstream" {
				probe = "healthcheck"
			}
			if want := []string{"CMD", binary, probe}; strings.Join(c.healthcheck, " ") != strings.Join(want, " ") {
				t.Errorf("HEALTHCHECK %q, want %q (no shell in the image)", c.healthcheck, want)
			}
			// Every variable set is a real setting; every listen address binds all interfaces on
			// the default port, and that port is exposed. A Raccoon variable (the collector image
			// sets SERVER_WEBSOCKET_PORT and friends) sets the address of its counterpart as ":port".
			exposed := map[string]bool{}
			for _, e := range c.expose {
				exposed[strings.TrimSuffix(e, "/tcp")] = true
			}
			listen := map[string]string{}
			for k, v := range c.env {
				if k == "TMPDIR" {
					continue
				}
				s, ok := settings[k]
				switch {
				case !ok:
					t.Errorf("ENV %s is not a setting of any binary", k)
				case strings.HasSuffix(k, "_ADDR"):
					listen[k] = v
				case strings.HasSuffix(s.Default, "_ADDR") && settings[s.Default].Name != "":
					if _, ours := c.env[s.Default]; !ours {
						listen[s.Default] = ":" + v
					}
				}
			}
			for k, addr := range listen {
				host, port, err := net.SplitHostPort(addr)
				if err != nil || (host != "0.0.0.0" && host != "") {
					t.Errorf("%s=%s: want 0.0.0.0:<port> or :<port> (every interface)", k, addr)
					continue
				}
				if want := defaultPort(t, settings, k); port != want {
					t.Errorf("%s port %s, want the default %s", k, port, want)
				}
				if !exposed[port] {
					t.Errorf("port %s of %s is not EXPOSEd", port, k)
				}
			}
			prefix := strings.ToUpper(target) + "_"
			if _, ok := listen[prefix+"ADMIN_ADDR"]; !ok {
				t.Errorf("%sADMIN_ADDR not set: the health check and Prometheus need the admin server reachable", prefix)
			}
			if target == "collector" || target == "clickstream" {
				for _, k := range []string{"COLLECTOR_HTTP_ADDR", "COLLECTOR_GRPC_ADDR"} {
					if _, ok := listen[k]; !ok {
						t.Errorf("%s is left at its loopback default: clients outside the container cannot connect", k)
					}
				}
			}
		})
	}
}

// Every file a Dockerfile copies from the build context is in the repository, and the build
// context is not polluted by what .dockerignore keeps out.
func TestDockerfileContext(t *testing.T) {
	for path, context := range map[string]string{"Dockerfile": ".", "deploy/compose/spark/Dockerfile": "."} {
		d := parseDockerfile(t, path)
		for _, s := range d.stages {
			for _, cmd := range s.Commands {
				cp, ok := cmd.(*instructions.CopyCommand)
				if !ok || cp.From != "" {
					continue
				}
				for _, src := range cp.SourcePaths {
					if src == "." {
						continue
					}
					if _, err := os.Stat(filepath.Join(repoRoot, context, src)); err != nil {
						t.Errorf("%s: COPY %s: %v", path, src, err)
					}
				}
			}
		}
	}
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{".infra", "bin", "lake", ".git"} {
		if !strings.Contains("\n"+string(ignore), "\n"+dir+"\n") {
			t.Errorf(".dockerignore does not keep %s out of the build context", dir)
		}
	}
	// The go build in the Dockerfile names packages that exist.
	d := parseDockerfile(t, "Dockerfile")
	build, _ := d.stage("build")
	found := 0
	for _, cmd := range build.Commands {
		run, ok := cmd.(*instructions.RunCommand)
		if !ok {
			continue
		}
		for _, word := range strings.Fields(strings.Join(run.CmdLine, " ")) {
			if strings.HasPrefix(word, "./") && strings.Contains(word, "/cmd/") {
				found++
				if _, err := os.Stat(filepath.Join(repoRoot, word, "main.go")); err != nil {
					t.Errorf("Dockerfile builds %s: %v", word, err)
				}
			}
		}
	}
	if found != 5 {
		t.Errorf("the build stage builds %d commands, want 5", found)
	}
}
