package enforce

//go:generate go tool bpf2go -tags linux -cc clang-19 -strip llvm-strip-19 -target amd64 -cflags "-O2 -g -Wall -Werror -I../../bpf/include" -type flow_key -type enforce_rule -type enforce_config -type enforce_flag -type enforce_event enforce ../../bpf/enforce.c
