// SPDX-License-Identifier: MIT
using System;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using static TorchSharp.torch;

namespace CustomAutograd.Diagnostics;

// The library's log messages (source-generated, free when the level is off).
internal static partial class Log
{
    internal const string Category = "CustomAutograd";

    private static ILogger s_logger = NullLogger.Instance;

    internal static ILoggerFactory? Factory { get; private set; }

    // Whether per-call Trace lines are wanted at all (AutogradDiagnostics.TraceCalls).
    internal static bool TraceCalls { get; set; }

    internal static void Configure(ILoggerFactory? factory)
    {
        ILogger logger = NullLogger.Instance;
        if (factory is not null)
        {
            try
            {
                logger = factory.CreateLogger(Category);
            }
            catch (Exception e)
            {
                DiagnosticsFailure.Report(e);
            }
        }
        Factory = factory;
        s_logger = logger;
    }

    // Every method contains what the user's logger throws (Note: diagnostics never break the math).
    internal static bool TraceEnabled
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => TraceCalls && s_logger is not NullLogger && IsEnabled(LogLevel.Trace);
    }

    private static bool IsEnabled(LogLevel level)
    {
        try
        {
            return s_logger.IsEnabled(level);
        }
        catch (Exception e)
        {
            DiagnosticsFailure.Report(e);
            return false;
        }
    }

    internal static void NativeLoaded(string torchSharp, string keepGraph)
    {
        try
        {
            NativeLoadedCore(s_logger, torchSharp, keepGraph);
        }
        catch (Exception e)
        {
            DiagnosticsFailure.Report(e);
        }
    }

    internal static void KeepGraphMissing()
    {
        try
        {
            KeepGraphMissingCore(s_logger);
        }
        catch (Exception e)
        {
            DiagnosticsFailure.Report(e);
        }
    }

    internal static void FunctionCreated(string function, AutogradFunctionOptions options)
    {
        try
        {
            FunctionCreatedCore(s_logger, function, options.MaterializeGrads, options.OnceDifferentiable);
        }
        catch (Exception e)
        {
            DiagnosticsFailure.Report(e);
        }
    }

    internal static void BackwardFailed(string function, Exception exception)
    {
        try
        {
            BackwardFailedCore(s_logger, function, exception);
        }
        catch (Exception e)
        {
            DiagnosticsFailure.Report(e);
        }
    }

    internal static void CallbackCleanupFailed(Exception exception)
    {
        try
        {
            CallbackCleanupFailedCore(s_logger, exception);
        }
        catch (Exception e)
        {
            DiagnosticsFailure.Report(e);
        }
    }

    // Call only when TraceEnabled.
    internal static void Applied(string function, Tensor?[] inputs, bool nodeCreated)
    {
        try
        {
            if (!s_logger.IsEnabled(LogLevel.Trace))
                return;
            string shapes = Shapes(inputs);
            AppliedCore(s_logger, function, shapes, nodeCreated);
        }
        catch (Exception e)
        {
            DiagnosticsFailure.Report(e);
        }
    }

    // Call only when TraceEnabled.
    internal static void BackwardRunning(string function, Tensor?[] grads)
    {
        try
        {
            if (!s_logger.IsEnabled(LogLevel.Trace))
                return;
            string shapes = Shapes(grads);
            BackwardRunningCore(s_logger, function, shapes);
        }
        catch (Exception e)
        {
            DiagnosticsFailure.Report(e);
        }
    }

    private static string Shapes(Tensor?[] tensors)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < tensors.Length; i++)
        {
            if (i > 0)
                sb.Append(", ");
            Tensor? t = tensors[i];
            sb.Append(t is null ? "null" : Graph.ShapeFormat.Format(t.shape) + " " + t.dtype + " " + t.device_type);
        }
        return sb.ToString();
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Debug,
                   Message = "CustomAutograd native shim initialised (LibTorchSharp: {TorchSharp}; keep-graph query: {KeepGraph})")]
    private static partial void NativeLoadedCore(ILogger logger, string torchSharp, string keepGraph);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning,
                   Message = "libtorch's get_current_graph_task_keep_graph was not found; saved tensors are kept until each graph node dies")]
    private static partial void KeepGraphMissingCore(ILogger logger);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "Backward of custom function '{Function}' failed")]
    private static partial void BackwardFailedCore(ILogger logger, string function, Exception exception);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Cleaning up after a native callback failed")]
    private static partial void CallbackCleanupFailedCore(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 5, Level = LogLevel.Debug,
                   Message = "Custom function '{Function}' created (materialize grads: {MaterializeGrads}, once differentiable: {OnceDifferentiable})")]
    private static partial void FunctionCreatedCore(ILogger logger, string function, bool materializeGrads, bool onceDifferentiable);

    [LoggerMessage(EventId = 6, Level = LogLevel.Trace, Message = "Apply '{Function}' on ({Inputs}); graph node created: {NodeCreated}")]
    private static partial void AppliedCore(ILogger logger, string function, string inputs, bool nodeCreated);

    [LoggerMessage(EventId = 7, Level = LogLevel.Trace, Message = "Backward '{Function}' with output gradients ({Gradients})")]
    private static partial void BackwardRunningCore(ILogger logger, string function, string gradients);
}
