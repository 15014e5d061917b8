// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Graph;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// A custom function of one tensor plus typed non-tensor arguments (a scale, a mode, a record of options),
/// which get no gradient. See <see cref="AutogradFunction.CreateWithArgs{TArgs}(string, Func{ForwardContext, Tensor, TArgs, Tensor}, Func{BackwardContext, Tensor, TArgs, Tensor}, AutogradFunctionOptions?)"/>.
/// </summary>
/// <typeparam name="TArgs">The arguments' type; a tuple or record for several.</typeparam>
public sealed class UnaryFunction<TArgs> : AutogradFunction, IArrayFunction<TArgs>
{
    private readonly Func<ForwardContext, Tensor?[], TArgs, Tensor[]> _forward;
    private readonly Func<BackwardContext, Tensor, TArgs, Tensor?> _backward;

    internal UnaryFunction(string name, Func<ForwardContext, Tensor, TArgs, Tensor> forward,
                           Func<BackwardContext, Tensor, TArgs, Tensor?> backward, AutogradFunctionOptions? options)
        : base(name, options)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(backward);
        _forward = (ctx, inputs, args) => new[] { forward(ctx, inputs[0]!, args) };
        _backward = backward;
    }

    /// <summary>Applies the function.</summary>
    /// <param name="input">The tensor input.</param>
    /// <param name="args">The non-tensor arguments, passed to both Forward and Backward.</param>
    /// <returns>The output.</returns>
    public Tensor Apply(Tensor input, TArgs args) =>
        Application.Apply(this, new[] { input }, new ArgsForward<TArgs>(_forward, args, ownsOutputArray: true))[0];

    int IArrayFunction<TArgs>.InputCount => 1;

    Tensor[] IArrayFunction<TArgs>.ApplyArray(Tensor?[] inputs, TArgs args) => new[] { Apply(inputs[0]!, args) };

    internal override Tensor?[] InvokeBackward(BackwardContext ctx, Tensor?[] grads) =>
        new[] { _backward(ctx, grads[0]!, ((NodeState<TArgs>)ctx.Node).Args) };
}
