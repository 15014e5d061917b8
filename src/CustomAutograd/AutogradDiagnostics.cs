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
    /// The first exception that a logger (<see cref="AutogradLogging.LoggerFactory"/>) or a metrics listener threw
    /// inside the library, or null. Such failures never fail an Apply or a Backward: they are contained, and the
    /// first one is kept here and written once to standard error.
    /// </summary>
    public static System.Exception? DiagnosticsFailure => Diagnostics.DiagnosticsFailure.First;

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
