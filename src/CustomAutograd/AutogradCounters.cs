// SPDX-License-Identifier: MIT
namespace CustomAutograd;

/// <summary>The library's counters (process-wide), read with <see cref="AutogradDiagnostics.ReadCounters"/>.</summary>
/// <param name="LiveNodes">Graph nodes of custom functions that libtorch has not destroyed yet.</param>
/// <param name="LiveSavedTensors">Tensors saved for backward and held by live nodes.</param>
/// <param name="NodesCreated">Graph nodes created since start.</param>
/// <param name="BackwardCalls">Backward delegates run since start.</param>
/// <param name="BackwardFailures">Backward runs that failed since start.</param>
public readonly record struct AutogradCounters(
    long LiveNodes, long LiveSavedTensors, long NodesCreated, long BackwardCalls, long BackwardFailures);
