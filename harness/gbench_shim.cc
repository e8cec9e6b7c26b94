// gbench_shim.cc — the C interface of gbench_shim.h over Google Benchmark 1.7.x. The only C++
// file of the tree: everything else, attnbench-gbench's main included, is C.
#include "gbench_shim.h"

#include <benchmark/benchmark.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <ostream>
#include <string>
#include <vector>

namespace {

benchmark::State &state_of(gbench_state *state)
{
    return *reinterpret_cast<benchmark::State *>(state);
}

void report(const char *what, const std::exception &e)
{
    std::fprintf(stderr, "attnbench-gbench: %s: %s\n", what, e.what());
}

// attnbench-gbench's console table: Google Benchmark's console reporter is 150 columns wide
// (every counter, CPU time, the "/real_time" suffix of every name). This one fits 100 columns
// for the names of the standard set: the name without "/real_time" (every benchmark is timed
// in real time), wall-clock time, iterations, GFLOP/s and the oracle error. The context goes to
// stderr as the console reporter sends it; --wide (gbench_run(false)) gives the library's.
size_t longest_name; // of the benchmarks registered

class NarrowReporter : public benchmark::BenchmarkReporter {
public:
    bool ReportContext(const Context &context) override
    {
        PrintBasicContext(&GetErrorStream(), context);
        // The longest name registered (the context's width counts aggregates' suffixes,
        // which this table shows in the iterations column instead).
        width_ = longest_name > suffix_len ? longest_name - suffix_len : 0;
        if (width_ < 9)
            width_ = 9;
        std::ostream &out = GetOutputStream();
        const std::string rule(width_ + 44, '-');
        out << rule << '\n';
        print_line(out, "Benchmark", "Time", "Iterations", "GFLOP/s", "max err");
        out << rule << '\n';
        return true;
    }

    void ReportRuns(const std::vector<Run> &runs) override
    {
        std::ostream &out = GetOutputStream();
        for (const Run &run : runs) {
            const std::string name = display_name(run.run_name.str());
            if (run.error_occurred) {
                out << pad(name) << "  ERROR: " << run.error_message << '\n';
                continue;
            }
            const bool percent = run.run_type == Run::RT_Aggregate &&
                                 run.aggregate_unit == benchmark::kPercentage;
            // A coefficient of variation is a fraction, not a time.
            const std::string time =
                percent ? format("%.2f %%", run.real_accumulated_time * 100)
                : run.GetAdjustedRealTime() >= 1e4
                    ? format("%.0f %s", run.GetAdjustedRealTime(),
                             benchmark::GetTimeUnitString(run.time_unit))
                    : format("%.4g %s", run.GetAdjustedRealTime(),
                             benchmark::GetTimeUnitString(run.time_unit));
            const std::string iterations =
                run.run_type == Run::RT_Aggregate
                    ? run.aggregate_name
                    : format("%lld", static_cast<long long>(run.iterations));
            out << pad(name);
            print_line(out, nullptr, time.c_str(), iterations.c_str(),
                       counter(run, "gflops", percent ? 'p' : 'g').c_str(),
                       counter(run, "max_rel_err", percent ? 'p' : 'e').c_str());
            if (!run.report_label.empty())
                out << "  " << run.report_label << '\n';
        }
        out.flush();
    }

private:
    static constexpr size_t suffix_len = sizeof "/real_time" - 1;
    size_t width_ = 9;

    __attribute__((format(printf, 1, 2))) static std::string format(const char *fmt, ...)
    {
        char buf[64];
        va_list args;
        va_start(args, fmt);
        std::vsnprintf(buf, sizeof buf, fmt, args);
        va_end(args);
        return buf;
    }

    // A counter's value, "" when the run has none; style 'g' plain, 'e' scientific (errors),
    // 'p' a fraction as percent (the cv aggregate).
    static std::string counter(const Run &run, const char *name, char style)
    {
        const auto it = run.counters.find(name);
        if (it == run.counters.end())
            return std::string();
        const double v = it->second.value;
        return style == 'e' ? format("%.1e", v)
                            : style == 'p' ? format("%.2f %%", v * 100) : format("%.4g", v);
    }

    static std::string display_name(std::string name)
    {
        const size_t at = name.find("/real_time");
        if (at != std::string::npos)
            name.erase(at, suffix_len);
        return name;
    }

    std::string pad(const std::string &name) const
    {
        return name.size() >= width_ ? name : name + std::string(width_ - name.size(), ' ');
    }

    // The columns after the name (a header when first is given): 44 characters.
    void print_line(std::ostream &out, const char *first, const char *time,
                    const char *iterations, const char *gflops, const char *error) const
    {
        char buf[128];
        std::snprintf(buf, sizeof buf, "  %12s %10s %8s %9s", time, iterations, gflops, error);
        if (first)
            out << pad(first);
        out << buf << '\n';
    }
};

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
        const size_t len = std::strlen(name) + sizeof "/real_time" - 1; // UseRealTime adds it
        if (len > longest_name)
            longest_name = len;
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

size_t gbench_run(bool narrow)
{
    try {
        if (narrow) {
            NarrowReporter reporter;
            return benchmark::RunSpecifiedBenchmarks(&reporter);
        }
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
