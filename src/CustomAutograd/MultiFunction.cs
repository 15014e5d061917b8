// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Graph;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>A custom function of any number of tensors with any number of tensor results (see <see cref="AutogradFunction.CreateMulti"/>).</summary>
public sealed class MultiFunction : AutogradFunction, IArrayFunction
{
    private readonly Func<ForwardContext, Tensor?[], Tensor[]> _forward;
    private readonly Func<BackwardContext, Tensor?[], Tensor?[]> _backward;

    internal MultiFunction(string name, Func<ForwardContext, Tensor?[], Tensor[]> forward,
                           Func<BackwardContext, Tensor?[], Tensor?[]> backward, AutogradFunctionOptions? options)
        : base(name, options)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(backward);
        // The Forward gets its own copy: whatever it does to the array, the gradients reach the tensors collected
        // by Apply (as PyTorch collects a Function's inputs before forward runs).
        _forward = (ctx, inputs) => forward(ctx, (Tensor?[])inputs.Clone());
        _backward = backward;
    }

    /// <summary>
    /// Applies the function. Inputs may be null (optional inputs): the Forward sees null there and the
    /// Backward must return null for them.
    /// </summary>
    /// <param name="inputs">The inputs, collected before the Forward runs.</param>
    /// <returns>The outputs, in the order the Forward returned them.</returns>
    public Tensor[] Apply(params Tensor?[] inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        return Application.Apply(this, (Tensor?[])inputs.Clone(), new PlainForward(_forward, ownsOutputArray: false));
    }

    int IArrayFunction.InputCount => -1;

    Tensor[] IArrayFunction.ApplyArray(Tensor?[] inputs) => Apply(inputs);

    internal override bool AllowsNullInput(int index) => true;

    internal override Tensor?[] InvokeBackward(BackwardContext ctx, Tensor?[] grads) =>
        _backward(ctx, grads) ?? throw new InvalidOperationException("the Backward returned null instead of an array.");
}
