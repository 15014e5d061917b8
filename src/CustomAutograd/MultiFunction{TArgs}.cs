// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Graph;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// A custom function of any number of tensors plus typed non-tensor arguments, which get no gradient.
/// See <see cref="AutogradFunction.CreateMultiWithArgs{TArgs}"/>.
/// </summary>
/// <typeparam name="TArgs">The arguments' type; a tuple or record for several.</typeparam>
public sealed class MultiFunction<TArgs> : AutogradFunction, IArrayFunction<TArgs>
{
    private readonly Func<ForwardContext, Tensor?[], TArgs, Tensor[]> _forward;
    private readonly Func<BackwardContext, Tensor?[], TArgs, Tensor?[]> _backward;

    internal MultiFunction(string name, Func<ForwardContext, Tensor?[], TArgs, Tensor[]> forward,
                           Func<BackwardContext, Tensor?[], TArgs, Tensor?[]> backward, AutogradFunctionOptions? options)
        : base(name, options)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(backward);
        // The Forward gets its own copy (see MultiFunction).
        _forward = (ctx, inputs, args) => forward(ctx, (Tensor?[])inputs.Clone(), args);
        _backward = backward;
    }

    /// <summary>Applies the function. Tensor inputs may be null (optional inputs).</summary>
    /// <param name="inputs">The tensor inputs, collected before the Forward runs.</param>
    /// <param name="args">The non-tensor arguments, passed to both Forward and Backward.</param>
    /// <returns>The outputs.</returns>
    public Tensor[] Apply(Tensor?[] inputs, TArgs args)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        return Application.Apply(this, (Tensor?[])inputs.Clone(), new ArgsForward<TArgs>(_forward, args, ownsOutputArray: false));
    }

    int IArrayFunction<TArgs>.InputCount => -1;

    Tensor[] IArrayFunction<TArgs>.ApplyArray(Tensor?[] inputs, TArgs args) => Apply(inputs, args);

    internal override bool AllowsNullInput(int index) => true;

    internal override Tensor?[] InvokeBackward(BackwardContext ctx, Tensor?[] grads) =>
        _backward(ctx, grads, ((NodeState<TArgs>)ctx.Node).Args)
        ?? throw new InvalidOperationException("the Backward returned null instead of an array.");
}
