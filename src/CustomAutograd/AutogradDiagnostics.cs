// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Graph;
using CustomAutograd.Native;
using Microsoft.Extensions.Logging;

namespace CustomAutograd;

/// <summary>
/// The one entry point for the library's diagnostics: logging, counters, the meter's name, the exceptions
/// Backwards threw, and failures of diagnostics themselves.
/// </summary>
/// <remarks>
/// <para>Logging: category <c>CustomAutograd</c>. Debug: function creation and native shim initialisation. Error:
/// every Backward failure, with the original exception and its stack trace. Trace: one line per Apply and per
/// Backward with tensor shapes, only when <see cref="TraceCalls"/> is set as well (a training loop would otherwise
/// write thousands of lines a second).</para>
/// <para>Metrics: the meter <see cref="MeterName"/> publishes <c>customautograd.applications</c>,
/// <c>customautograd.backward.calls</c>, <c>customautograd.backward.failures</c>, <c>customautograd.nodes.live</c>
/// and the histogram <c>customautograd.backward.duration</c> (seconds), each tagged with the function's name
/// (<c>customautograd.function</c>). Watch them with <c>dotnet-counters monitor --counters CustomAutograd</c>.</para>
/// <para>A logger or a metrics listener that throws never fails an Apply or a Backward; see
/// <see cref="DiagnosticsFailure"/>.</para>
/// </remarks>
public static class AutogradDiagnostics
{
    /// <summary>The name of the library's <see cref="System.Diagnostics.Metrics.Meter"/>.</summary>
    public const string MeterName = Diagnostics.Metrics.MeterName;

    /// <summary>The name of the tag that carries the function's name on every measurement.</summary>
    public const string FunctionTag = Diagnostics.Metrics.FunctionTag;

    /// <summary>The factory the library logs through; null (the default) turns logging off and makes it free.</summary>
    public static ILoggerFactory? LoggerFactory
    {
        get => Diagnostics.Log.Factory;
        set => Diagnostics.Log.Configure(value);
    }

    /// <summary>
    /// Whether each Apply and each Backward writes a Trace line (with the tensors' shapes) when Trace is enabled
    /// for the <c>CustomAutograd</c> category. Off by default.
    /// </summary>
    public static bool TraceCalls
    {
        get => Diagnostics.Log.TraceCalls;
        set => Diagnostics.Log.TraceCalls = value;
    }

    /// <summary>Reads the library's counters (loads the native shim if needed).</summary>
    /// <returns>A snapshot.</returns>
    public static AutogradCounters ReadCounters()
    {
        CaStats s = NativeRuntime.ReadStats();
        return new AutogradCounters(s.LiveNodes, s.LiveSaved, s.NodesCreated, s.BackwardCalls, s.BackwardFailures);
    }

    /// <summary>The exception most recently thrown by a Backward in this process, or null.</summary>
    public static Exception? LastBackwardException => BackwardFailures.Last;

    /// <summary>
    /// Finds the .NET exception that a Backward threw, given the exception that TorchSharp's <c>backward()</c>
    /// raised for it (TorchSharp raises its own exception type with our message). The most recent failures are
    /// remembered per process. <see cref="Autograd.Backward(System.Collections.Generic.IReadOnlyList{TorchSharp.torch.Tensor}, System.Collections.Generic.IReadOnlyList{TorchSharp.torch.Tensor?}?, bool?, bool, System.Collections.Generic.IReadOnlyList{TorchSharp.torch.Tensor}?)"/>
    /// and <see cref="Autograd.Grad"/> give it directly as the inner exception.
    /// </summary>
    /// <param name="exception">The exception caught around <c>backward()</c>.</param>
    /// <param name="original">The exception the Backward threw.</param>
    /// <returns>True when it was found.</returns>
    public static bool TryGetBackwardException(Exception exception, out Exception? original)
        => BackwardFailures.TryGet(exception, out original);

    /// <summary>
    /// The first exception that a logger (<see cref="LoggerFactory"/>) or a metrics listener threw inside the
    /// library, or null. Such failures never fail an Apply or a Backward: they are contained, and the first one is
    /// kept here and written once to standard error.
    /// </summary>
    public static Exception? DiagnosticsFailure => Diagnostics.DiagnosticsFailure.First;

    /// <summary>
    /// Disposes, on the calling thread, the handles the shim still holds to gradients that earlier Backwards
    /// returned (libtorch takes them out of a Backward's results only after it has returned). They are otherwise
    /// released at the thread's next custom-function call, <c>Autograd.Grad</c> or <c>Autograd.Backward</c>, and
    /// large, device and graph-carrying ones also at the end of the backward pass, whichever comes first. Handles
    /// held on libtorch's device threads cannot be reached from here.
    /// </summary>
    public static void FlushThread()
    {
        NativeRuntime.EnsureInitialized();
        NativeMethods.ca_flush_thread();
    }
}
