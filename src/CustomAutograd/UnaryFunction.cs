// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Graph;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// A custom function of one tensor with one tensor result (see
/// <see cref="AutogradFunction.Create(string, Func{ForwardContext, Tensor, Tensor}, Func{BackwardContext, Tensor, Tensor?}, AutogradFunctionOptions?)"/>).
/// </summary>
public sealed class UnaryFunction : AutogradFunction, IArrayFunction
{
    private readonly Func<ForwardContext, Tensor?[], Tensor[]> _forward;
    private readonly Func<BackwardContext, Tensor, Tensor?> _backward;

    internal UnaryFunction(string name, Func<ForwardContext, Tensor, Tensor> forward,
                           Func<BackwardContext, Tensor, Tensor?> backward, AutogradFunctionOptions? options)
        : base(name, options)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(backward);
        _forward = (ctx, inputs) =>
        {
            Tensor output = forward(ctx, inputs[0]!);
            Tensor?[] outputs = SingleTensorArrays.Rent();
            outputs[0] = output;
            return outputs!;
        };
        _backward = backward;
    }

    /// <summary>
    /// Applies the function. Equivalent to PyTorch's <c>MyFunction.apply(input)</c>: the Forward runs with
    /// grad mode off, and the result is connected to the autograd graph when grad mode is on and the input
    /// requires grad.
    /// </summary>
    /// <param name="input">The input tensor.</param>
    /// <returns>The output, registered in the caller's dispose scope like any TorchSharp result.</returns>
    public Tensor Apply(Tensor input)
    {
        Tensor?[] inputs = SingleTensorArrays.Rent();
        inputs[0] = input;
        Tensor[]? results = null;
        try
        {
            results = Application.Apply(this, inputs, new PlainForward(_forward, ownsOutputArray: true));
            return results[0];
        }
        finally
        {
            SingleTensorArrays.Return(inputs);
            if (results is not null)
                SingleTensorArrays.Return(results!);
        }
    }

    int IArrayFunction.InputCount => 1;

    Tensor[] IArrayFunction.ApplyArray(Tensor?[] inputs) => new[] { Apply(inputs[0]!) };

    internal override Tensor?[] InvokeBackward(BackwardContext ctx, Tensor?[] grads)
    {
        // With materialised grads (the default) the gradient is never null here; without, it may be. The
        // one-element gradient array is reused for the result when the caller allows it.
        Tensor? result = _backward(ctx, grads[0]!);
        Tensor?[] results = ctx.MayReuseGradients ? grads : new Tensor?[1];
        results[0] = result;
        return results;
    }
}
