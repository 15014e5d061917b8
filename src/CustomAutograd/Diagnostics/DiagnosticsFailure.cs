// SPDX-License-Identifier: MIT
using System;
using System.Threading;

namespace CustomAutograd.Diagnostics;

// Where a failing logger or metrics listener ends up: diagnostics never break the math, so every call into
// user-supplied logging or metrics code is contained, and the first failure is kept and written once to
// standard error (the logger itself cannot be trusted to report it).
internal static class DiagnosticsFailure
{
    private static Exception? s_first;

    // The first exception a logger or listener threw, or null.
    internal static Exception? First => Volatile.Read(ref s_first);

    internal static void Report(Exception exception)
    {
        if (Interlocked.CompareExchange(ref s_first, exception, null) is not null)
            return;
        try
        {
            Console.Error.WriteLine(
                $"CustomAutograd: a logger or metrics listener threw {exception.GetType().FullName}: {exception.Message} " +
                "The library goes on without it (reported once; see AutogradDiagnostics.DiagnosticsFailure).");
        }
        catch (Exception)
        {
            // Standard error is gone too: the exception stays available through First.
        }
    }
}
