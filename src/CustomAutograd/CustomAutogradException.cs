// SPDX-License-Identifier: MIT
using System;

namespace CustomAutograd;

/// <summary>
/// Raised by CustomAutograd: libtorch rejected an application of a custom function, the native shim could not
/// be loaded, a function was used incorrectly, or a backward run through <see cref="Autograd.Backward(System.Collections.Generic.IReadOnlyList{TorchSharp.torch.Tensor}, System.Collections.Generic.IReadOnlyList{TorchSharp.torch.Tensor?}?, bool?, bool, System.Collections.Generic.IReadOnlyList{TorchSharp.torch.Tensor}?)"/>
/// or <see cref="Autograd.Grad"/> failed (then <see cref="Exception.InnerException"/> is the exception a failing
/// Backward threw). TorchSharp's own <c>loss.backward()</c> raises TorchSharp's exception type instead; see
/// <see cref="AutogradDiagnostics.TryGetBackwardException"/>.
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
