/* topology.h — the machine's layout through hwloc: packages, NUMA nodes, cores, hardware
 * threads, the data caches of each level and which CPUs share each of them; and binding a thread
 * to a core. Loaded once on first use and kept for the life of the process (read-only after
 * that, so every function here is thread-safe). When hwloc cannot load a topology, counts fall
 * back to sysconf and `from_hwloc` is false; cache sizes are then 0 (cpu.c keeps its own
 * sysconf fallback for them). */
#ifndef ATTN_TOPOLOGY_H
#define ATTN_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { ATTN_CACHE_LEVELS = 3 }; /* L1d, L2, L3 */

typedef struct attn_cache_info {
    int64_t bytes;     /* one instance; 0 when the level is absent or unknown */
    int64_t line_bytes;
    int instances;     /* how many of them the machine has */
} attn_cache_info;

typedef struct attn_topology {
    bool from_hwloc;
    int packages, numa_nodes, cores, pus;
    int cores_first_numa;                       /* cores of NUMA node 0: the default thread count */
    attn_cache_info cache[ATTN_CACHE_LEVELS];   /* [0] = L1d, [1] = L2, [2] = L3 */
} attn_topology;

/* The topology of this machine (loaded on the first call). Never NULL. */
const attn_topology *attn_topology_get(void);

/* CPUs (OS indices, as a list such as "0-3,8") that share instance `instance` of cache level
 * `level` (1..3). False when hwloc is unavailable or the instance does not exist. */
bool attn_topology_cache_cpus(int level, int instance, char *buf, size_t len);

/* CPUs (OS indices) of core `core` (logical order) or of NUMA node `node`. */
bool attn_topology_core_cpus(int core, char *buf, size_t len);
bool attn_topology_numa_cpus(int node, char *buf, size_t len);

/* Logical index of the core that hardware thread `os_cpu` (an OS index, as sched_getcpu()
 * returns) belongs to; -1 when unknown. */
int attn_topology_core_of_cpu(int os_cpu);

/* Binds the calling thread to every hardware thread of core `core`, in hwloc's logical order
 * (the cores of NUMA node 0 come first), taken modulo the number of cores. False when hwloc is
 * unavailable or the OS refuses; the thread then stays where it was. */
bool attn_topology_bind_thread_to_core(int core);

#endif
