package tls

//go:generate go tool bpf2go -tags linux -cc clang-19 -strip llvm-strip-19 -target amd64 -cflags "-O2 -g -Wall -Werror -I../../bpf/include" -type chunk_event tlsBpf ../../bpf/tls.c
