// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Threading;

namespace CustomAutograd.Graph;

// Remembers the exceptions thrown by Backwards, so the original can be found from the exception that
// TorchSharp raises at backward(). Each message carries a marker with a number; the most recent
// Capacity failures are kept.
internal static class BackwardFailures
{
    internal const int Capacity = 256;
    private const string Marker = "[CustomAutograd backward error #";

    private static readonly object Gate = new();
    private static readonly Dictionary<long, Exception> Recent = new();
    private static readonly Queue<long> Order = new();
    private static long s_next;
    private static Exception? s_last;

    // The most recent exception a Backward threw, or null.
    internal static Exception? Last => Volatile.Read(ref s_last);

    // Stores the exception and returns the message for the engine: "name: Type: message [marker]".
    internal static string Record(string functionName, Exception exception)
    {
        long id = Interlocked.Increment(ref s_next);
        Volatile.Write(ref s_last, exception);
        lock (Gate)
        {
            Recent[id] = exception;
            Order.Enqueue(id);
            while (Order.Count > Capacity)
                Recent.Remove(Order.Dequeue());
        }
        return functionName + ": " + exception.GetType().FullName + ": " + exception.Message + " " + Marker +
               id.ToString(CultureInfo.InvariantCulture) + "]";
    }

    internal static bool TryGet(Exception? exception, out Exception? original)
    {
        for (Exception? e = exception; e is not null; e = e.InnerException)
        {
            if (TryGet(e.Message, out original))
                return true;
        }
        original = null;
        return false;
    }

    // Finds the original exception from the marker in an error message.
    internal static bool TryGet(string message, out Exception? original)
    {
        original = null;
        int at = message.LastIndexOf(Marker, StringComparison.Ordinal);
        if (at < 0)
            return false;
        int start = at + Marker.Length;
        int end = message.IndexOf(']', start);
        if (end <= start || !long.TryParse(message.AsSpan(start, end - start), NumberStyles.None,
                                           CultureInfo.InvariantCulture, out long id))
            return false;
        lock (Gate)
            return Recent.TryGetValue(id, out original);
    }
}
