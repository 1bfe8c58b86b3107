package validator

import "runtime/debug"

// Version is the validator's version, written into every dead letter (validator_version).
// Release builds set it with
//
//	-ldflags "-X github.com/clickstream/clickstream/validator.Version=v1.2.3"
//
// Left empty, it is the main module's version from the build information, else "devel".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
	}
	return "devel"
}
