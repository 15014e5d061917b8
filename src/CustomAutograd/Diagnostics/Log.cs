// SPDX-License-Identifier: MIT
using System;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CustomAutograd.Diagnostics;

/// <summary>The library's log messages (source-generated, free when the level is off).</summary>
internal static partial class Log
{
    private static ILogger s_logger = NullLogger.Instance;

    internal static void Configure(ILoggerFactory? factory) =>
        s_logger = factory?.CreateLogger("CustomAutograd") ?? NullLogger.Instance;

    internal static void NativeLoaded(string torchSharp, string keepGraph) => NativeLoadedCore(s_logger, torchSharp, keepGraph);

    internal static void KeepGraphMissing() => KeepGraphMissingCore(s_logger);

    internal static void BackwardFailed(string function, Exception exception) => BackwardFailedCore(s_logger, function, exception);

    internal static void CallbackCleanupFailed(Exception exception) => CallbackCleanupFailedCore(s_logger, exception);

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
}
