// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Graph;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// A custom function of two tensors with one tensor result (see
/// <see cref="AutogradFunction.Create(string, Func{ForwardContext, Tensor, Tensor, Tensor}, Func{BackwardContext, Tensor, ValueTuple{Tensor, Tensor}}, AutogradFunctionOptions?)"/>).
/// </summary>
public sealed class BinaryFunction : AutogradFunction, IArrayFunction
{
    private readonly Func<ForwardContext, Tensor?[], Tensor[]> _forward;
    private readonly Func<BackwardContext, Tensor, (Tensor? GradA, Tensor? GradB)> _backward;

    internal BinaryFunction(string name, Func<ForwardContext, Tensor, Tensor, Tensor> forward,
                            Func<BackwardContext, Tensor, (Tensor? GradA, Tensor? GradB)> backward,
                            AutogradFunctionOptions? options)
        : base(name, options)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(backward);
        _forward = (ctx, inputs) => new[] { forward(ctx, inputs[0]!, inputs[1]!) };
        _backward = backward;
    }

    /// <summary>Applies the function to two tensors.</summary>
    /// <param name="a">The first input.</param>
    /// <param name="b">The second input.</param>
    /// <returns>The output, connected to the graph when grad mode is on and an input requires grad.</returns>
    public Tensor Apply(Tensor a, Tensor b) =>
        Application.Apply(this, new[] { a, b }, new PlainForward(_forward, ownsOutputArray: true))[0];

    int IArrayFunction.InputCount => 2;

    Tensor[] IArrayFunction.ApplyArray(Tensor?[] inputs) => new[] { Apply(inputs[0]!, inputs[1]!) };

    internal override Tensor?[] InvokeBackward(BackwardContext ctx, Tensor?[] grads)
    {
        (Tensor? ga, Tensor? gb) = _backward(ctx, grads[0]!);
        return new[] { ga, gb };
    }
}
