// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Logging;

namespace CustomAutograd;

/// <summary>
/// The one configuration point for the library's logging. Until a factory is set, nothing is logged and
/// logging costs nothing.
/// </summary>
/// <remarks>
/// Categories and levels: <c>CustomAutograd</c>. Debug: function creation, native shim initialisation.
/// Error: every Backward failure, with the original exception and its stack trace. Trace: one line per
/// Apply and per Backward with tensor shapes (off unless Trace is enabled for the category).
/// </remarks>
public static class AutogradLogging
{
    private static ILoggerFactory? s_factory;

    /// <summary>The factory the library logs through; null (the default) turns logging off.</summary>
    public static ILoggerFactory? LoggerFactory
    {
        get => s_factory;
        set
        {
            s_factory = value;
            Diagnostics.Log.Configure(value);
        }
    }
}
