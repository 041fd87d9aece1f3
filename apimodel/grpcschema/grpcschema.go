// Package grpcschema loads user-supplied protobuf descriptor sets (a binary
// google.protobuf.FileDescriptorSet, as written by
// `protoc --descriptor_set_out=x.pb --include_imports` or `buf build -o
// x.binpb`) and maps gRPC request paths to the request and response message
// descriptors. The inventory uses it to name and type the fields of gRPC
// messages it would otherwise only know by number and wire type.
//
// The agent never fetches descriptors itself (no server reflection client):
// what is not in a loaded set keeps the wire-format schema.
package grpcschema

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// maxFileBytes bounds one descriptor set file: real sets are kilobytes to a
// few megabytes; anything much larger is a wrong path, not a schema.
const maxFileBytes = 64 << 20

// Registry resolves gRPC method paths to message descriptors. It is
// immutable after Load and safe for concurrent use.
type Registry struct {
	methods  map[string]method // "/pkg.Service/Method"
	services int
}

type method struct {
	in, out protoreflect.MessageDescriptor
}

// Load reads descriptor-set files and resolves them together, so one file
// may import what another defines. Files that appear in several sets (the
// usual google/protobuf/*.proto imports) are kept once when identical. An
// import no set provides is taken from the well-known types compiled into
// the agent when it is one of them, and is an error otherwise.
func Load(paths ...string) (*Registry, error) {
	set := &descriptorpb.FileDescriptorSet{}
	byName := map[string]*descriptorpb.FileDescriptorProto{}
	from := map[string]string{} // file name -> set path, for errors
	for _, p := range paths {
		fds, err := readSet(p)
		if err != nil {
			return nil, err
		}
		for _, f := range fds.File {
			name := f.GetName()
			if old, ok := byName[name]; ok {
				if !proto.Equal(old, f) {
					return nil, fmt.Errorf("grpc descriptor set %s: %s differs from the copy in %s", p, name, from[name])
				}
				continue
			}
			byName[name], from[name] = f, p
			set.File = append(set.File, f)
		}
	}
	if err := addMissingImports(set, byName, from); err != nil {
		return nil, err
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("grpc descriptor sets %s: %w", strings.Join(paths, ", "), err)
	}
	r := &Registry{methods: map[string]method{}}
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		svcs := fd.Services()
		for i := 0; i < svcs.Len(); i++ {
			sd := svcs.Get(i)
			r.services++
			ms := sd.Methods()
			for j := 0; j < ms.Len(); j++ {
				md := ms.Get(j)
				r.methods["/"+string(sd.FullName())+"/"+string(md.Name())] = method{md.Input(), md.Output()}
			}
		}
		return true
	})
	return r, nil
}

// readSet reads and decodes one file, rejecting what is not a descriptor
// set: protobuf decoding is lenient (text often parses as unknown fields),
// so a set must also hold at least one named file.
func readSet(p string) (*descriptorpb.FileDescriptorSet, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("grpc descriptor set: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("grpc descriptor set %s: is a directory", p)
	}
	if st.Size() > maxFileBytes {
		return nil, fmt.Errorf("grpc descriptor set %s: %d bytes, more than %d", p, st.Size(), maxFileBytes)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("grpc descriptor set: %w", err)
	}
	fds := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(b, fds); err != nil {
		return nil, fmt.Errorf("grpc descriptor set %s: not a binary FileDescriptorSet: %w", p, err)
	}
	if len(fds.File) == 0 {
		return nil, fmt.Errorf("grpc descriptor set %s: not a binary FileDescriptorSet (no files; "+
			"build it with protoc --descriptor_set_out=FILE --include_imports or buf build -o FILE)", p)
	}
	for i, f := range fds.File {
		if f.GetName() == "" {
			return nil, fmt.Errorf("grpc descriptor set %s: file %d has no name: not a FileDescriptorSet", p, i)
		}
	}
	return fds, nil
}

// addMissingImports appends the well-known files the sets import but do
// not carry, and reports the first import nothing provides.
func addMissingImports(set *descriptorpb.FileDescriptorSet, byName map[string]*descriptorpb.FileDescriptorProto, from map[string]string) error {
	for i := 0; i < len(set.File); i++ { // grows while walking
		f := set.File[i]
		for _, dep := range f.GetDependency() {
			if _, ok := byName[dep]; ok {
				continue
			}
			fd, err := protoregistry.GlobalFiles.FindFileByPath(dep)
			if err != nil || !strings.HasPrefix(dep, "google/protobuf/") {
				return fmt.Errorf("grpc descriptor set %s: %s imports %s, which no descriptor set holds "+
					"(build the set with protoc --include_imports)", from[f.GetName()], f.GetName(), dep)
			}
			wk := protodesc.ToFileDescriptorProto(fd)
			byName[dep], from[dep] = wk, "built-in"
			set.File = append(set.File, wk)
		}
	}
	return nil
}

// Method returns the request and response message descriptors of a gRPC
// path ("/package.Service/Method"); ok is false for methods no set holds.
func (r *Registry) Method(path string) (in, out protoreflect.MessageDescriptor, ok bool) {
	if r == nil {
		return nil, nil, false
	}
	m, ok := r.methods[path]
	return m.in, m.out, ok
}

// Services and Methods count what was loaded, for the start-up log.
func (r *Registry) Services() int { return r.services }
func (r *Registry) Methods() int  { return len(r.methods) }

// MethodPaths lists the loaded method paths, sorted.
func (r *Registry) MethodPaths() []string {
	out := make([]string, 0, len(r.methods))
	for p := range r.methods {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
