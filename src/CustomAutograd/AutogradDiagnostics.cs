// SPDX-License-Identifier: MIT
using CustomAutograd.Interop;

namespace CustomAutograd;

/// <summary>Counters kept by the native shim (process-wide, since start).</summary>
/// <param name="LiveNodes">Graph nodes created by custom functions and not yet destroyed by libtorch.</param>
/// <param name="LiveSavedTensors">Saved variables held by live nodes.</param>
/// <param name="LiveClosures">libffi closures allocated (in use or pooled for reuse).</param>
/// <param name="PooledNodes">Node records waiting in the shim's reuse pool.</param>
/// <param name="NodesCreated">Nodes created since start.</param>
/// <param name="BackwardCalls">Backward calls since start.</param>
/// <param name="BackwardFailures">Backward calls that failed since start.</param>
public readonly record struct NativeCounters(
    long LiveNodes, long LiveSavedTensors, long LiveClosures, long PooledNodes, long NodesCreated,
    long BackwardCalls, long BackwardFailures);

/// <summary>Diagnostics of the library as a whole.</summary>
public static class AutogradDiagnostics
{
    /// <summary>Reads the native shim's counters (loads the shim if needed).</summary>
    /// <returns>A snapshot.</returns>
    public static NativeCounters ReadNativeCounters()
    {
        CaStats s = NativeRuntime.ReadStats();
        return new NativeCounters(s.LiveNodes, s.LiveSaved, s.LiveClosures, s.PooledNodes, s.NodesCreated,
                                  s.BackwardCalls, s.BackwardFailures);
    }

    /// <summary>
    /// Disposes, on the calling thread, the small CPU gradient handles the shim keeps until libtorch has copied
    /// them (they are otherwise released at the next custom-function call on the thread). Large, device and
    /// graph-carrying gradients are released at the end of each backward pass anyway; gradients kept by
    /// libtorch's own device threads cannot be reached from here.
    /// </summary>
    public static void FlushThread()
    {
        NativeRuntime.EnsureInitialized();
        NativeMethods.ca_flush_thread();
    }
}
