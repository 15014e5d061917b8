// SPDX-License-Identifier: MIT
using System;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;

namespace CustomAutograd.Diagnostics;

/// <summary>
/// The <c>CustomAutograd</c> meter: counters a tool such as <c>dotnet-counters</c> can watch.
/// </summary>
internal static class Metrics
{
    internal const string MeterName = "CustomAutograd";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Applications =
        Meter.CreateCounter<long>("customautograd.applications", "{call}", "Custom-function applications (Apply calls).");
    private static readonly Counter<long> BackwardCalls =
        Meter.CreateCounter<long>("customautograd.backward.calls", "{call}", "Backward delegates run.");
    private static readonly Counter<long> BackwardFailures =
        Meter.CreateCounter<long>("customautograd.backward.failures", "{call}", "Backward delegates that failed.");
    private static readonly UpDownCounter<long> LiveNodes =
        Meter.CreateUpDownCounter<long>("customautograd.nodes.live", "{node}", "Graph nodes alive.");

    internal static void Applied() => Add(Applications, 1);

    internal static void BackwardCalled() => Add(BackwardCalls, 1);

    internal static void BackwardFailed() => Add(BackwardFailures, 1);

    internal static void NodeCreated() => Add(LiveNodes, 1);

    internal static void NodeReleased() => Add(LiveNodes, -1);

    // A listener's callback runs inside Add: what it throws is contained (diagnostics never break the math).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Add(Counter<long> counter, long value)
    {
        if (counter.Enabled)
            AddSlow(counter, value);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Add(UpDownCounter<long> counter, long value)
    {
        if (counter.Enabled)
            AddSlow(counter, value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AddSlow(Instrument<long> instrument, long value)
    {
        try
        {
            if (instrument is Counter<long> counter)
                counter.Add(value);
            else
                ((UpDownCounter<long>)instrument).Add(value);
        }
        catch (Exception e)
        {
            DiagnosticsFailure.Report(e);
        }
    }
}
