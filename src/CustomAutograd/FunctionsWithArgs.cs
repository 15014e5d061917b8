// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Interop;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// A custom function of one tensor plus typed non-tensor arguments (a scale, a mode, a record of options),
/// which get no gradient. See <see cref="AutogradFunction.CreateWithArgs{TArgs}"/>.
/// </summary>
/// <typeparam name="TArgs">The arguments' type; a tuple or record for several.</typeparam>
public sealed class UnaryFunction<TArgs> : AutogradFunction
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
        ApplyCore(new[] { input }, new ArgsForward<TArgs>(_forward, args, ownsOutputArray: true))[0];

    internal override Tensor?[] InvokeBackward(BackwardContext ctx, Tensor?[] grads) =>
        new[] { _backward(ctx, grads[0]!, ((NodeState<TArgs>)ctx.Node).Args) };
}

/// <summary>
/// A custom function of any number of tensors plus typed non-tensor arguments, which get no gradient.
/// See <see cref="AutogradFunction.CreateMultiWithArgs{TArgs}"/>.
/// </summary>
/// <typeparam name="TArgs">The arguments' type; a tuple or record for several.</typeparam>
public sealed class MultiFunction<TArgs> : AutogradFunction
{
    private readonly Func<ForwardContext, Tensor?[], TArgs, Tensor[]> _forward;
    private readonly Func<BackwardContext, Tensor?[], TArgs, Tensor?[]> _backward;

    internal MultiFunction(string name, Func<ForwardContext, Tensor[], TArgs, Tensor[]> forward,
                           Func<BackwardContext, Tensor?[], TArgs, Tensor?[]> backward, AutogradFunctionOptions? options)
        : base(name, options)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(backward);
        // The Forward gets its own copy (see MultiFunction).
        _forward = (ctx, inputs, args) => forward(ctx, (Tensor[])inputs.Clone(), args);
        _backward = backward;
    }

    /// <summary>Applies the function. Tensor inputs may be null (optional inputs).</summary>
    /// <param name="args">The non-tensor arguments, passed to both Forward and Backward.</param>
    /// <param name="inputs">The tensor inputs.</param>
    /// <returns>The outputs.</returns>
    public Tensor[] Apply(TArgs args, params Tensor[] inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        return ApplyCore((Tensor?[])inputs.Clone(), new ArgsForward<TArgs>(_forward, args, ownsOutputArray: false));
    }

    internal override bool AllowsNullInputs => true;

    internal override Tensor?[] InvokeBackward(BackwardContext ctx, Tensor?[] grads) =>
        _backward(ctx, grads, ((NodeState<TArgs>)ctx.Node).Args)
        ?? throw new InvalidOperationException("the Backward returned null instead of an array.");
}
