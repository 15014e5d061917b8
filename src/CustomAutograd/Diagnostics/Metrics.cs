// SPDX-License-Identifier: MIT
using System.Diagnostics.Metrics;

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

    internal static void Applied()
    {
        if (Applications.Enabled)
            Applications.Add(1);
    }

    internal static void BackwardCalled()
    {
        if (BackwardCalls.Enabled)
            BackwardCalls.Add(1);
    }

    internal static void BackwardFailed()
    {
        if (BackwardFailures.Enabled)
            BackwardFailures.Add(1);
    }

    internal static void NodeCreated()
    {
        if (LiveNodes.Enabled)
            LiveNodes.Add(1);
    }

    internal static void NodeReleased()
    {
        if (LiveNodes.Enabled)
            LiveNodes.Add(-1);
    }
}
