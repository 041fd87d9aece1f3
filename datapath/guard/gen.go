package guard

//go:generate go tool bpf2go -tags linux -cc clang-19 -strip llvm-strip-19 -target amd64 -cflags "-O2 -g -Wall -Werror -I../../bpf/include" -type guard_v4_key -type guard_v6_key -type guard_block guard ../../bpf/guard.c
