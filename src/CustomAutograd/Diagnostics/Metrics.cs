// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;

namespace CustomAutograd.Diagnostics;

// The CustomAutograd meter: instruments a tool such as dotnet-counters can watch, each measurement
// tagged with the function's name. Nothing is measured (and nothing allocated) while no listener is attached.
internal static class Metrics
{
    internal const string MeterName = "CustomAutograd";
    internal const string FunctionTag = "customautograd.function";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Applications =
        Meter.CreateCounter<long>("customautograd.applications", "{call}", "Custom-function applications (Apply calls).");
    private static readonly Counter<long> BackwardCalls =
        Meter.CreateCounter<long>("customautograd.backward.calls", "{call}", "Backward delegates run.");
    private static readonly Counter<long> BackwardFailures =
        Meter.CreateCounter<long>("customautograd.backward.failures", "{call}", "Backward delegates that failed.");
    private static readonly UpDownCounter<long> LiveNodes =
        Meter.CreateUpDownCounter<long>("customautograd.nodes.live", "{node}", "Graph nodes alive.");
    private static readonly Histogram<double> BackwardDuration =
        Meter.CreateHistogram<double>("customautograd.backward.duration", "s", "Time spent in each Backward delegate.");

    internal static void Applied(string function) => Add(Applications, 1, function);

    internal static void BackwardCalled(string function) => Add(BackwardCalls, 1, function);

    internal static void BackwardFailed(string function) => Add(BackwardFailures, 1, function);

    internal static void NodeCreated(string function) => Add(LiveNodes, 1, function);

    internal static void NodeReleased(string function) => Add(LiveNodes, -1, function);

    // A timestamp to pass to BackwardFinished, or 0 when nobody listens.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long BackwardStarting() => BackwardDuration.Enabled ? Stopwatch.GetTimestamp() : 0;

    internal static void BackwardFinished(string function, long started)
    {
        if (started == 0 || !BackwardDuration.Enabled)
            return;
        try
        {
            BackwardDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>(FunctionTag, function));
        }
        catch (Exception e)
        {
            DiagnosticsFailure.Report(e);
        }
    }

    // A listener's callback runs inside Add: what it throws is contained (diagnostics never break the math).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Add(Counter<long> counter, long value, string function)
    {
        if (counter.Enabled)
            AddSlow(counter, value, function);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Add(UpDownCounter<long> counter, long value, string function)
    {
        if (counter.Enabled)
            AddSlow(counter, value, function);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AddSlow(Instrument<long> instrument, long value, string function)
    {
        var tag = new KeyValuePair<string, object?>(FunctionTag, function);
        try
        {
            if (instrument is Counter<long> counter)
                counter.Add(value, tag);
            else
                ((UpDownCounter<long>)instrument).Add(value, tag);
        }
        catch (Exception e)
        {
            DiagnosticsFailure.Report(e);
        }
    }
}
