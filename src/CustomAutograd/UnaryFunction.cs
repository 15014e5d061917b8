// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Interop;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>A custom function of one tensor with one tensor result (see <see cref="AutogradFunction.Create(string, Func{ForwardContext, Tensor, Tensor}, Func{BackwardContext, Tensor, Tensor?}, AutogradFunctionOptions?)"/>).</summary>
public sealed class UnaryFunction : AutogradFunction
{
    private readonly Func<ForwardContext, Tensor?[], Tensor[]> _forward;
    private readonly Func<BackwardContext, Tensor, Tensor?> _backward;

    internal UnaryFunction(string name, Func<ForwardContext, Tensor, Tensor> forward,
                           Func<BackwardContext, Tensor, Tensor?> backward, AutogradFunctionOptions? options)
        : base(name, options)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(backward);
        _forward = (ctx, inputs) => new[] { forward(ctx, inputs[0]!) };
        _backward = backward;
    }

    /// <summary>
    /// Applies the function. Equivalent to PyTorch's <c>MyFunction.apply(input)</c>: the Forward runs with
    /// grad mode off, and the result is connected to the autograd graph when grad mode is on and the input
    /// requires grad.
    /// </summary>
    /// <param name="input">The input tensor.</param>
    /// <returns>The output, registered in the caller's dispose scope like any TorchSharp result.</returns>
    public Tensor Apply(Tensor input) => ApplyCore(new[] { input }, new PlainForward(_forward))[0];

    internal override Tensor?[] InvokeBackward(BackwardContext ctx, Tensor?[] grads)
    {
        // With materialised grads (the default) the gradient is never null here; without, it may be.
        return new[] { _backward(ctx, grads[0]!) };
    }
}
