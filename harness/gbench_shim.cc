// gbench_shim.cc — the C interface of gbench_shim.h over Google Benchmark 1.7.x. The only C++
// file of the tree: everything else, attnbench-gbench's main included, is C.
#include "gbench_shim.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <exception>

namespace {

benchmark::State &state_of(gbench_state *state)
{
    return *reinterpret_cast<benchmark::State *>(state);
}

void report(const char *what, const std::exception &e)
{
    std::fprintf(stderr, "attnbench-gbench: %s: %s\n", what, e.what());
}

} // namespace

extern "C" {

void gbench_initialize(int *argc, char **argv)
{
    try {
        benchmark::Initialize(argc, argv);
    } catch (const std::exception &e) {
        report("initialize", e);
    }
}

bool gbench_register(const char *name, gbench_fn fn, void *arg)
{
    try {
        benchmark::RegisterBenchmark(name, [fn, arg](benchmark::State &state) {
            fn(reinterpret_cast<gbench_state *>(&state), arg);
        })->UseRealTime()->Unit(benchmark::kMicrosecond);
        return true;
    } catch (const std::exception &e) {
        report("register", e);
        return false;
    }
}

void gbench_add_context(const char *key, const char *value)
{
    try {
        benchmark::AddCustomContext(key, value);
    } catch (const std::exception &e) {
        report("context", e);
    }
}

size_t gbench_run(void)
{
    try {
        return benchmark::RunSpecifiedBenchmarks();
    } catch (const std::exception &e) {
        report("run", e);
        return 0;
    }
}

void gbench_shutdown(void) { benchmark::Shutdown(); }

bool gbench_keep_running(gbench_state *state) { return state_of(state).KeepRunning(); }

int64_t gbench_iterations(const gbench_state *state)
{
    return static_cast<int64_t>(reinterpret_cast<const benchmark::State *>(state)->iterations());
}

void gbench_set_counter(gbench_state *state, const char *name, double value)
{
    try {
        state_of(state).counters[name] = benchmark::Counter(value);
    } catch (const std::exception &e) {
        report("counter", e);
    }
}

void gbench_set_label(gbench_state *state, const char *label)
{
    try {
        state_of(state).SetLabel(label);
    } catch (const std::exception &e) {
        report("label", e);
    }
}

void gbench_skip_with_error(gbench_state *state, const char *message)
{
    state_of(state).SkipWithError(message);
}

} // extern "C"
