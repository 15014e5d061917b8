// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Graph;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// A custom function of three tensors, the third optional, with one tensor result: the shape of PyTorch's
/// <c>LinearFunction(input, weight, bias=None)</c> (see
/// <see cref="AutogradFunction.Create(string, Func{ForwardContext, Tensor, Tensor, Tensor, Tensor}, Func{BackwardContext, Tensor, ValueTuple{Tensor, Tensor, Tensor}}, AutogradFunctionOptions?)"/>).
/// </summary>
public sealed class TernaryFunction : AutogradFunction, IArrayFunction
{
    private readonly Func<ForwardContext, Tensor?[], Tensor[]> _forward;
    private readonly Func<BackwardContext, Tensor, (Tensor? GradA, Tensor? GradB, Tensor? GradC)> _backward;

    internal TernaryFunction(string name, Func<ForwardContext, Tensor, Tensor, Tensor?, Tensor> forward,
                             Func<BackwardContext, Tensor, (Tensor? GradA, Tensor? GradB, Tensor? GradC)> backward,
                             AutogradFunctionOptions? options)
        : base(name, options)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(backward);
        _forward = (ctx, inputs) => new[] { forward(ctx, inputs[0]!, inputs[1]!, inputs[2]) };
        _backward = backward;
    }

    /// <summary>Applies the function to two tensors and an optional third.</summary>
    /// <param name="a">The first input.</param>
    /// <param name="b">The second input.</param>
    /// <param name="c">The third input, or null (the Forward then receives null, and the Backward returns null for it).</param>
    /// <returns>The output, connected to the graph when grad mode is on and an input requires grad.</returns>
    public Tensor Apply(Tensor a, Tensor b, Tensor? c = null) =>
        Application.Apply(this, new[] { a, b, c }, new PlainForward(_forward, ownsOutputArray: true))[0];

    int IArrayFunction.InputCount => 3;

    Tensor[] IArrayFunction.ApplyArray(Tensor?[] inputs) => new[] { Apply(inputs[0]!, inputs[1]!, inputs[2]) };

    internal override bool AllowsNullInput(int index) => index == 2;

    internal override Tensor?[] InvokeBackward(BackwardContext ctx, Tensor?[] grads)
    {
        (Tensor? ga, Tensor? gb, Tensor? gc) = _backward(ctx, grads[0]!);
        return new[] { ga, gb, gc };
    }
}
