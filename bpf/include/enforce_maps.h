/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * enforce_maps.h - the enforcement maps, defined once for every object that
 * matches rules or flags flows (enforce.c at TC, tls.c on decrypted bytes).
 * The TLS loader replaces its copies with the enforcer's maps
 * (MapReplacements), which only works while both objects declare them with
 * the same type, key, value and size: hence one definition here.
 */
#ifndef APIWARDEN_ENFORCE_MAPS_H
#define APIWARDEN_ENFORCE_MAPS_H

#include "enforce_types.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ENFORCE_MAX_RULES);
	__type(key, __u32);
	__type(value, struct enforce_rule);
} enforce_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct enforce_config);
} enforce_settings SEC(".maps");

/* Per-service mode in the kernel: the agent maps the server ports of
 * services whose mode differs from the global one to the action their
 * matches take (a monitor service under global protect only counts). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ENFORCE_MAX_PORT_MODES);
	__type(key, __u16);
	__type(value, __u8);
} port_modes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ENFORCE_MAX_FLAGGED);
	__type(key, struct flow_key);
	__type(value, struct enforce_flag);
} flagged_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} enforce_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ENF_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} enforce_counters SEC(".maps");

#endif
