package procmon

//go:generate go tool bpf2go -tags linux -cc clang-19 -strip llvm-strip-19 -target amd64 -cflags "-O2 -g -Wall -Werror -I../../bpf/include" -type aw_proc_event -type sock_event -type procmon_hdr -type procmon_counter -type procmon_record_type procmon ../../bpf/procmon.c
