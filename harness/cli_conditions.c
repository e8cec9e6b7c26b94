/* cli_conditions.c — the conditions a measurement ran under, for every record (run, sweep, tune,
 * plan): the load average at the start and at the end, the CPU frequency and the cpufreq governor
 * of the CPUs it may run on (where Linux exposes them), the affinity it ran with, and whether
 * SMT siblings share a core within that affinity. A timing means little without them on a shared
 * machine: a load average of 4 on 2 CPUs explains a wide spread better than any statistic.
 *
 * Linux's files: /proc/loadavg, /proc/cpuinfo ("cpu MHz", the fallback for frequency),
 * /sys/devices/system/cpu/cpuN/cpufreq/{scaling_cur_freq,scaling_governor} and
 * .../cpuN/topology/thread_siblings_list. What a system lacks is null, never an error. */
#include "cli.h"

#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The first line of a small file, without its newline; false when it cannot be read. */
static bool read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    const bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

/* {"1min", "5min", "15min"} from /proc/loadavg, or JSON null. */
static json_t *loadavg_json(double *one_minute)
{
    char line[128];
    double a, b, c;
    *one_minute = NAN;
    if (!read_line("/proc/loadavg", line, sizeof line) ||
        sscanf(line, "%lf %lf %lf", &a, &b, &c) != 3)
        return json_null();
    *one_minute = a;
    return json_pack("{s:f, s:f, s:f}", "1min", a, "5min", b, "15min", c);
}

/* The CPUs this process may run on, as "0-3,6" text and a count. */
static int affinity_text(cpu_set_t *set, char *buf, size_t len)
{
    buf[0] = '\0';
    if (sched_getaffinity(0, sizeof *set, set) != 0)
        return 0;
    size_t used = 0;
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, set))
            continue;
        count++;
        int last = cpu;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, set))
            last++;
        const char *sep = used ? "," : "";
        int n = last > cpu ? snprintf(buf + used, len - used, "%s%d-%d", sep, cpu, last)
                           : snprintf(buf + used, len - used, "%s%d", sep, cpu);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
        count += last - cpu;
        cpu = last;
    }
    return count;
}

/* Mean, lowest and highest frequency of the CPUs in set, MHz: cpufreq's current frequency,
 * else /proc/cpuinfo's "cpu MHz" (which lists every CPU; its processor numbers are matched). */
static json_t *frequency_json(const cpu_set_t *set)
{
    double sum = 0, lo = INFINITY, hi = 0;
    int n = 0;
    const char *source = "cpufreq";
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, set))
            continue;
        char path[96], line[64];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/cpufreq/scaling_cur_freq", cpu);
        if (!read_line(path, line, sizeof line))
            continue;
        const double mhz = atof(line) / 1000;
        if (mhz > 0) {
            sum += mhz, n++;
            lo = mhz < lo ? mhz : lo;
            hi = mhz > hi ? mhz : hi;
        }
    }
    if (n == 0) {
        source = "/proc/cpuinfo";
        FILE *f = fopen("/proc/cpuinfo", "r");
        char line[256];
        int processor = -1;
        while (f && fgets(line, sizeof line, f)) {
            double mhz;
            if (sscanf(line, "processor : %d", &processor) == 1)
                continue;
            if (sscanf(line, "cpu MHz : %lf", &mhz) == 1 && processor >= 0 &&
                processor < CPU_SETSIZE && CPU_ISSET(processor, set) && mhz > 0) {
                sum += mhz, n++;
                lo = mhz < lo ? mhz : lo;
                hi = mhz > hi ? mhz : hi;
            }
        }
        if (f)
            fclose(f);
    }
    if (n == 0)
        return json_null();
    return json_pack("{s:f, s:f, s:f, s:s}", "mean", sum / n, "min", lo, "max", hi, "source",
                     source);
}

/* The cpufreq governor of the CPUs in set ("performance"; "mixed" when they differ), or null. */
static json_t *governor_json(const cpu_set_t *set)
{
    char first[64] = "";
    bool mixed = false;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, set))
            continue;
        char path[96], line[64];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/cpufreq/scaling_governor", cpu);
        if (!read_line(path, line, sizeof line))
            continue;
        if (!first[0])
            snprintf(first, sizeof first, "%s", line);
        else if (strcmp(first, line))
            mixed = true;
    }
    return !first[0] ? json_null() : json_string(mixed ? "mixed" : first);
}

/* How many cores of the affinity have two or more of their SMT siblings in it (threads there
 * share a core's units), or -1 when the topology files are missing. */
static int smt_shared_cores(const cpu_set_t *set)
{
    int shared = 0;
    bool any = false;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, set))
            continue;
        char path[96], line[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list",
                 cpu);
        if (!read_line(path, line, sizeof line))
            continue;
        any = true;
        /* Count each core once: at its first sibling. "0,8" or "0-1". */
        int first = atoi(line), in_set = 0;
        if (first != cpu)
            continue;
        for (char *t = line; *t;) {
            char *end;
            long a = strtol(t, &end, 10), b = a;
            if (end == t)
                break;
            if (*end == '-')
                b = strtol(end + 1, &end, 10);
            for (long s = a; s <= b && s < CPU_SETSIZE; s++)
                in_set += s >= 0 && CPU_ISSET((int)s, set);
            t = *end == ',' ? end + 1 : end;
        }
        shared += in_set > 1;
    }
    return any ? shared : -1;
}

json_t *cli_conditions_start(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    char affinity[512];
    const int cpus = affinity_text(&set, affinity, sizeof affinity);
    double one;
    json_t *load = loadavg_json(&one);
    const int shared = smt_shared_cores(&set);
    return json_pack("{s:o, s:n, s:o, s:o, s:s, s:i, s:i, s:o}", "loadavg_start", load,
                     "loadavg_end", "cpu_mhz", cpus ? frequency_json(&set) : json_null(),
                     "governor", cpus ? governor_json(&set) : json_null(), "affinity", affinity,
                     "affinity_cpus", cpus, "cpus_online", (int)sysconf(_SC_NPROCESSORS_ONLN),
                     "smt_shared_cores", shared >= 0 ? json_integer(shared) : json_null());
}

bool cli_conditions_end(json_t *conditions)
{
    double one;
    return conditions && !json_object_set_new(conditions, "loadavg_end", loadavg_json(&one));
}

bool cli_conditions_busy(const json_t *conditions, double *load, int *cpus)
{
    const json_t *start = json_object_get(conditions, "loadavg_start");
    *load = json_number_value(json_object_get(start, "1min"));
    *cpus = (int)json_integer_value(json_object_get(conditions, "cpus_online"));
    return start && cli_load_busy(*load, *cpus);
}

bool cli_load_busy(double load, int cpus)
{
    return cpus > 0 && load >= 0.5 * cpus; /* other work keeping half the CPUs busy or more */
}

void cli_conditions_warn(const char *command, const json_t *conditions)
{
    double load;
    int cpus;
    if (cli_conditions_busy(conditions, &load, &cpus))
        fprintf(stderr,
                "attnbench %s: warning: load average %.2f on %d CPUs: the machine is busy, "
                "timings will be noisy\n", command, load, cpus);
}

bool cli_document_stamp(json_t *root, const attn_problem *p, json_t *conditions)
{
    if (!root) {
        json_decref(conditions);
        return false;
    }
    return !json_object_set_new(root, "tool", json_string("attnbench " ATTN_VERSION_STRING)) &&
           !json_object_set_new(root, "machine", cli_machine_json()) &&
           !json_object_set_new(root, "shape", p ? cli_problem_json(p) : json_null()) &&
           !json_object_set_new(root, "conditions", conditions ? conditions : json_null());
}
