// Package compile turns a directory of a team's .proto files into a schema version: a
// FileDescriptorSet that `clickstream schemas push` checks and appends to the schema topic.
// The files are compiled at run time (pure Go, no protoc or buf needed), and their imports of
// the built-in files resolve to the descriptors linked into the binary, so the event option and
// the protovalidate rules are the same Go types in the push and in every service.
package compile

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/ast"
	"github.com/bufbuild/protocompile/linker"
	"github.com/bufbuild/protocompile/parser"
	"github.com/bufbuild/protocompile/reporter"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/clickstream/clickstream/schemas/registry"
)

// Dir compiles every .proto file under dir and checks the result as Check does, so that a
// set it returns is one the schema topic accepts (compatibility with the previous version
// aside: that needs the topic).
//
// Import paths are relative to dir. Imports of built-in files (registry.Builtin) resolve to
// the descriptors linked into the binary; copies of them vendored under dir are ignored, not
// compiled and not part of the set. Files that declare no event type (shared messages, enums)
// are compiled and part of the set like the others. Directories whose name starts with "." are
// skipped. The set carries source info, so later problems can name file:line:col, and its
// custom options are typed extensions.
//
// Every compile error is reported at once, one per line, as "file:line:col: message" with the
// file relative to dir.
func Dir(dir string) (*descriptorpb.FileDescriptorSet, error) {
	set, err := compileDir(dir)
	if err != nil {
		return nil, err
	}
	if _, err := Check(set, 0); err != nil {
		return nil, err
	}
	return set, nil
}

// Check builds the registry of version from set and checks what compiling cannot: the event
// options (type names, id_field, time_field), that there is at least one event type, and that
// every protovalidate rule compiles. It reports every problem at once, at file:line:col when
// the set carries source info.
func Check(set *descriptorpb.FileDescriptorSet, version uint32) (*registry.Registry, error) {
	r, err := registry.FromDescriptorSet(set, version)
	if err != nil {
		return nil, err
	}
	if len(r.Types()) == 0 {
		return nil, errors.New("no event type: mark a message with option (clickstream.v1.event) = {type: \"...\"}")
	}
	if err := r.CheckRules(); err != nil {
		return nil, err
	}
	return r, nil
}

func compileDir(dir string) (*descriptorpb.FileDescriptorSet, error) {
	paths, err := protoFiles(dir)
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%s: no .proto files", dir)
	}
	var errs []reporter.ErrorWithPos
	seen := map[string]bool{}
	c := protocompile.Compiler{
		Resolver:       resolver{dir: dir},
		SourceInfoMode: protocompile.SourceInfoStandard,
		// Keep going after an error, to report every one; a file that imports a broken file
		// can repeat its error, hence the dedup.
		Reporter: reporter.NewReporter(func(err reporter.ErrorWithPos) error {
			if msg := err.Error(); !seen[msg] {
				seen[msg] = true
				errs = append(errs, err)
			}
			return nil
		}, nil),
	}
	files, err := c.Compile(context.Background(), paths...)
	if err != nil && !errors.Is(err, reporter.ErrInvalidSource) {
		var pos reporter.ErrorWithPos
		if !errors.As(err, &pos) {
			// Not a source error: a file that cannot be read, a panic.
			return nil, fmt.Errorf("compile %s: %w", dir, err)
		}
		// An import that cannot be found stops the compile without going through the
		// reporter, so only the first is returned: look for the others.
		for _, e := range append([]reporter.ErrorWithPos{pos}, missingImports(dir, paths)...) {
			if !seen[e.Error()] {
				seen[e.Error()] = true
				errs = append(errs, e)
			}
		}
	}
	if len(errs) > 0 {
		// Files compile concurrently: sort, so the same sources give the same report.
		slices.SortFunc(errs, func(a, b reporter.ErrorWithPos) int {
			pa, pb := a.GetPosition(), b.GetPosition()
			return cmp.Or(strings.Compare(pa.Filename, pb.Filename), cmp.Compare(pa.Line, pb.Line), cmp.Compare(pa.Col, pb.Col))
		})
		joined := make([]error, len(errs))
		for i, e := range errs {
			joined[i] = e
		}
		return nil, errors.Join(joined...)
	}
	return descriptorSet(files)
}

// protoFiles lists the .proto files under dir, relative to it with "/" separators, sorted,
// without the vendored copies of built-in files.
func protoFiles(dir string) ([]string, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if filepath.Ext(p) != ".proto" {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); !registry.Builtin(rel) {
			paths = append(paths, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list .proto files: %w", err)
	}
	slices.Sort(paths)
	return paths, nil
}

// resolver finds built-in files among the linked descriptors and every other file under dir.
type resolver struct{ dir string }

func (r resolver) FindFileByPath(path string) (protocompile.SearchResult, error) {
	if registry.Builtin(path) {
		fd, err := builtin(path)
		if err != nil {
			return protocompile.SearchResult{}, err
		}
		return protocompile.SearchResult{Desc: fd}, nil
	}
	name, err := r.local(path)
	if err != nil {
		return protocompile.SearchResult{}, err
	}
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return protocompile.SearchResult{}, notFound(path)
	}
	if err != nil {
		return protocompile.SearchResult{}, err
	}
	return protocompile.SearchResult{Source: f}, nil
}

// local returns the file name of an import path, which must name a file under dir, never one
// beside or above it.
func (r resolver) local(path string) (string, error) {
	if !filepath.IsLocal(filepath.FromSlash(path)) {
		return "", fmt.Errorf("%s: not a path under the schema directory", path)
	}
	return filepath.Join(r.dir, filepath.FromSlash(path)), nil
}

// builtin finds a built-in file among the descriptors linked into the binary.
func builtin(path string) (protoreflect.FileDescriptor, error) {
	fd, err := protoregistry.GlobalFiles.FindFileByPath(path)
	if err != nil {
		return nil, fmt.Errorf("%s is built in but not linked into this binary", path)
	}
	return fd, nil
}

// exists reports why an import path cannot be resolved, nil when it can.
func (r resolver) exists(path string) error {
	if registry.Builtin(path) {
		_, err := builtin(path)
		return err
	}
	name, err := r.local(path)
	if err != nil {
		return err
	}
	if _, err := os.Stat(name); err != nil {
		return notFound(path)
	}
	return nil
}

func notFound(path string) error {
	return fmt.Errorf("%s: no such file in the schema directory and not built in", path)
}

// missingImports parses every file for its imports and reports, at the import, each one that
// names neither a built-in file nor a file under dir. Parse errors are left to the compiler.
func missingImports(dir string, paths []string) []reporter.ErrorWithPos {
	r := resolver{dir: dir}
	var out []reporter.ErrorWithPos
	for _, p := range paths {
		src, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			continue
		}
		root, _ := parser.Parse(p, bytes.NewReader(src), reporter.NewHandler(nil))
		if root == nil {
			continue
		}
		for _, decl := range root.Decls {
			imp, ok := decl.(*ast.ImportNode)
			if !ok || imp.Name == nil {
				continue
			}
			if err := r.exists(imp.Name.AsString()); err != nil {
				out = append(out, reporter.Error(root.NodeInfo(imp.Name), err))
			}
		}
	}
	return out
}

// descriptorSet turns the compiled files into a set in import order (a file after its
// imports, as protoc writes sets), then re-reads it with the linked types so the custom
// options (clickstream.v1.event, buf.validate) are typed extensions, not unknown bytes.
func descriptorSet(files linker.Files) (*descriptorpb.FileDescriptorSet, error) {
	set := &descriptorpb.FileDescriptorSet{}
	added := map[string]bool{}
	var add func(f linker.File)
	add = func(f linker.File) {
		if added[f.Path()] || registry.Builtin(f.Path()) {
			return
		}
		added[f.Path()] = true
		imports := f.Imports()
		for i := range imports.Len() {
			if dep := files.FindFileByPath(imports.Get(i).Path()); dep != nil {
				add(dep)
			}
		}
		var fdp *descriptorpb.FileDescriptorProto
		if res, ok := f.(linker.Result); ok {
			fdp = res.FileDescriptorProto()
		} else {
			fdp = protodesc.ToFileDescriptorProto(f)
		}
		set.File = append(set.File, fdp)
	}
	for _, f := range files {
		add(f)
	}
	b, err := proto.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("encode descriptor set: %w", err)
	}
	out := &descriptorpb.FileDescriptorSet{}
	if err := (proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}).Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("decode descriptor set: %w", err)
	}
	return out, nil
}
