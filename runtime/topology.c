/* topology.c — hwloc behind topology.h. The hwloc topology is loaded once (pthread_once) and
 * never modified afterwards, which hwloc documents as safe to query from several threads. */
#include "topology.h"

#include <hwloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static attn_topology info;
static hwloc_topology_t topo; /* NULL when hwloc failed */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static const hwloc_obj_type_t cache_types[ATTN_CACHE_LEVELS] = {
    HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L3CACHE,
};

static int count_of(hwloc_obj_type_t type)
{
    int n = hwloc_get_nbobjs_by_type(topo, type);
    return n > 0 ? n : 0;
}

static void load_fallback(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    info.pus = info.cores = info.cores_first_numa = n > 0 ? (int)n : 1;
    info.packages = info.numa_nodes = 1;
}

static void load(void)
{
    if (hwloc_topology_init(&topo) != 0) {
        topo = NULL;
        load_fallback();
        return;
    }
    if (hwloc_topology_load(topo) != 0) {
        hwloc_topology_destroy(topo);
        topo = NULL;
        load_fallback();
        return;
    }
    info.from_hwloc = true;
    info.packages = count_of(HWLOC_OBJ_PACKAGE);
    info.numa_nodes = count_of(HWLOC_OBJ_NUMANODE);
    info.cores = count_of(HWLOC_OBJ_CORE);
    info.pus = count_of(HWLOC_OBJ_PU);
    if (info.cores == 0) /* some virtual machines expose PUs only */
        info.cores = info.pus;
    hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, 0);
    int first = node ? hwloc_get_nbobjs_inside_cpuset_by_type(topo, node->cpuset, HWLOC_OBJ_CORE)
                     : 0;
    info.cores_first_numa = first > 0 ? first : info.cores;
    for (int l = 0; l < ATTN_CACHE_LEVELS; l++) {
        attn_cache_info *c = &info.cache[l];
        c->instances = count_of(cache_types[l]);
        hwloc_obj_t o = hwloc_get_obj_by_type(topo, cache_types[l], 0);
        if (o && o->attr) {
            c->bytes = (int64_t)o->attr->cache.size;
            c->line_bytes = o->attr->cache.linesize;
        }
    }
}

const attn_topology *attn_topology_get(void)
{
    pthread_once(&load_once, load);
    return &info;
}

static bool cpus_of(hwloc_obj_t o, char *buf, size_t len)
{
    if (!o || !o->cpuset || len == 0)
        return false;
    return hwloc_bitmap_list_snprintf(buf, len, o->cpuset) >= 0;
}

bool attn_topology_cache_cpus(int level, int instance, char *buf, size_t len)
{
    attn_topology_get();
    if (!topo || level < 1 || level > ATTN_CACHE_LEVELS || instance < 0)
        return false;
    return cpus_of(hwloc_get_obj_by_type(topo, cache_types[level - 1], (unsigned)instance), buf,
                   len);
}

static hwloc_obj_t core_obj(int core);

#ifdef __linux__
/* Each core's CPUs as an affinity mask, made on first use: hwloc_set_cpubind allocates a mask
 * on every call, and a worker rebinds whenever the caller has moved to another core, which
 * would make a plan's execute allocate (attn.h promises it does not). */
static cpu_set_t **core_masks;
static size_t core_mask_bytes;
static pthread_once_t masks_once = PTHREAD_ONCE_INIT;

static void make_core_masks(void)
{
    const int n = info.cores;
    const int last = hwloc_bitmap_last(hwloc_topology_get_topology_cpuset(topo));
    cpu_set_t **masks = calloc((size_t)n, sizeof *masks);
    if (!masks || last < 0)
        goto failed;
    core_mask_bytes = CPU_ALLOC_SIZE(last + 1);
    for (int c = 0; c < n; c++) {
        hwloc_obj_t o = core_obj(c);
        if (!o || !(masks[c] = CPU_ALLOC(last + 1)))
            goto failed;
        CPU_ZERO_S(core_mask_bytes, masks[c]);
        unsigned cpu;
        hwloc_bitmap_foreach_begin(cpu, o->cpuset)
            if ((int)cpu <= last)
                CPU_SET_S(cpu, core_mask_bytes, masks[c]);
        hwloc_bitmap_foreach_end();
    }
    core_masks = masks;
    return;
failed:
    for (int c = 0; masks && c < n; c++)
        CPU_FREE(masks[c]);
    free(masks); /* binding falls back to hwloc_set_cpubind */
}
#endif

static hwloc_obj_t core_obj(int core)
{
    int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    hwloc_obj_type_t type = HWLOC_OBJ_CORE;
    if (n <= 0) {
        n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
        type = HWLOC_OBJ_PU;
    }
    if (n <= 0 || core < 0)
        return NULL;
    return hwloc_get_obj_by_type(topo, type, (unsigned)(core % n));
}

bool attn_topology_core_cpus(int core, char *buf, size_t len)
{
    attn_topology_get();
    return topo && core >= 0 && core < info.cores && cpus_of(core_obj(core), buf, len);
}

bool attn_topology_numa_cpus(int node, char *buf, size_t len)
{
    attn_topology_get();
    return topo && node >= 0 &&
           cpus_of(hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)node), buf, len);
}

int attn_topology_core_of_cpu(int os_cpu)
{
    attn_topology_get();
    if (!topo || os_cpu < 0)
        return -1;
    hwloc_obj_t pu = hwloc_get_pu_obj_by_os_index(topo, (unsigned)os_cpu);
    if (!pu)
        return -1;
    if (hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) <= 0) /* PUs stand for cores */
        return (int)pu->logical_index;
    hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_CORE, pu);
    return core ? (int)core->logical_index : -1;
}

bool attn_topology_bind_thread_to_core(int core)
{
    attn_topology_get();
    if (!topo)
        return false;
#ifdef __linux__
    pthread_once(&masks_once, make_core_masks);
    if (core_masks && core >= 0 && core < info.cores)
        return pthread_setaffinity_np(pthread_self(), core_mask_bytes, core_masks[core]) == 0;
#endif
    hwloc_obj_t o = core_obj(core);
    return o && hwloc_set_cpubind(topo, o->cpuset, HWLOC_CPUBIND_THREAD) == 0;
}
