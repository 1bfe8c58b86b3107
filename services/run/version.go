package run

import "runtime/debug"

// ModuleVersion is the version of module in this binary's build information: its own version
// when it is the main module, the required version when it is a dependency, "(devel)" when the
// build does not say (go run, tests, a workspace build).
func ModuleVersion(module string) string {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == module {
				v = d.Version
			}
		}
		if bi.Main.Path == module && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	return v
}
