// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Graph;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// A custom function of two tensors plus typed non-tensor arguments, which get no gradient. See
/// <see cref="AutogradFunction.CreateWithArgs{TArgs}(string, Func{ForwardContext, Tensor, Tensor, TArgs, Tensor}, Func{BackwardContext, Tensor, TArgs, ValueTuple{Tensor, Tensor}}, AutogradFunctionOptions?)"/>.
/// </summary>
/// <typeparam name="TArgs">The arguments' type; a tuple or record for several.</typeparam>
public sealed class BinaryFunction<TArgs> : AutogradFunction, IArrayFunction<TArgs>
{
    private readonly Func<ForwardContext, Tensor?[], TArgs, Tensor[]> _forward;
    private readonly Func<BackwardContext, Tensor, TArgs, (Tensor? GradA, Tensor? GradB)> _backward;

    internal BinaryFunction(string name, Func<ForwardContext, Tensor, Tensor, TArgs, Tensor> forward,
                            Func<BackwardContext, Tensor, TArgs, (Tensor? GradA, Tensor? GradB)> backward,
                            AutogradFunctionOptions? options)
        : base(name, options)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(backward);
        _forward = (ctx, inputs, args) => new[] { forward(ctx, inputs[0]!, inputs[1]!, args) };
        _backward = backward;
    }

    /// <summary>Applies the function.</summary>
    /// <param name="a">The first input.</param>
    /// <param name="b">The second input.</param>
    /// <param name="args">The non-tensor arguments, passed to both Forward and Backward.</param>
    /// <returns>The output.</returns>
    public Tensor Apply(Tensor a, Tensor b, TArgs args) =>
        Application.Apply(this, new[] { a, b }, new ArgsForward<TArgs>(_forward, args, ownsOutputArray: true))[0];

    int IArrayFunction<TArgs>.InputCount => 2;

    Tensor[] IArrayFunction<TArgs>.ApplyArray(Tensor?[] inputs, TArgs args) => new[] { Apply(inputs[0]!, inputs[1]!, args) };

    internal override Tensor?[] InvokeBackward(BackwardContext ctx, Tensor?[] grads)
    {
        (Tensor? ga, Tensor? gb) = _backward(ctx, grads[0]!, ((NodeState<TArgs>)ctx.Node).Args);
        return new[] { ga, gb };
    }
}
