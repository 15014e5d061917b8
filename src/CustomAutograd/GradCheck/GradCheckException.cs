// SPDX-License-Identifier: MIT
using System;

namespace CustomAutograd;

/// <summary>
/// Thrown by <see cref="GradCheck"/> and <see cref="GradGradCheck"/> when a check fails and
/// <see cref="GradCheckOptions.RaiseException"/> is set (the default). The message is the result's report;
/// <see cref="Result"/> holds the details. PyTorch's <c>GradcheckError</c>.
/// </summary>
public class GradCheckException : CustomAutogradException
{
    /// <summary>Creates an exception with no message and no result.</summary>
    public GradCheckException()
    {
    }

    /// <summary>Creates an exception with a message and no result.</summary>
    /// <param name="message">What failed.</param>
    public GradCheckException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a message, no result and the exception that caused it.</summary>
    /// <param name="message">What failed.</param>
    /// <param name="innerException">The cause.</param>
    public GradCheckException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception for a failed check; the message is <c>result.ToString()</c>.</summary>
    /// <param name="result">The failed result.</param>
    public GradCheckException(GradCheckResult result)
        : base((result ?? throw new ArgumentNullException(nameof(result))).ToString(), result.Exception!)
    {
        Result = result;
    }

    /// <summary>The failed check's result (null only when created with one of the standard constructors).</summary>
    public GradCheckResult? Result { get; }
}
