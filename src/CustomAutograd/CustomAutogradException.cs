// SPDX-License-Identifier: MIT
using System;

namespace CustomAutograd;

/// <summary>
/// Raised by CustomAutograd itself: libtorch rejected an application of a custom function, the native
/// shim could not be loaded, or a function was used incorrectly. Errors raised inside a Backward reach
/// the caller of <c>backward()</c> as TorchSharp's exception instead; see
/// <see cref="AutogradFunction.TryGetBackwardException"/>.
/// </summary>
public class CustomAutogradException : Exception
{
    /// <summary>Creates an exception with no message.</summary>
    public CustomAutogradException()
    {
    }

    /// <summary>Creates an exception with a message.</summary>
    /// <param name="message">What went wrong and how to fix it.</param>
    public CustomAutogradException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a message and the exception that caused it.</summary>
    /// <param name="message">What went wrong and how to fix it.</param>
    /// <param name="innerException">The cause.</param>
    public CustomAutogradException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates an exception that names the custom function involved.</summary>
    /// <param name="functionName">The function's name.</param>
    /// <param name="message">What went wrong.</param>
    /// <param name="innerException">The cause, if any.</param>
    public CustomAutogradException(string functionName, string message, Exception? innerException)
        : base(functionName + ": " + message, innerException)
    {
        FunctionName = functionName;
    }

    /// <summary>The name of the custom function involved, when there is one.</summary>
    public string? FunctionName { get; }
}
