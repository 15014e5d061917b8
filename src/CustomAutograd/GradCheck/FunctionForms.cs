// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Graph;
using static TorchSharp.torch;

namespace CustomAutograd;

// Every function form that GradCheck and GradGradCheck accept, as the one delegate
// their core checks: an array of inputs (nulls kept) to an array of outputs.
internal static class FunctionForms
{
    // A custom function of any form without typed arguments.
    internal static Func<Tensor?[], Tensor[]> Of(IArrayFunction function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return function.ApplyArray;
    }

    // A custom function with typed arguments, bound to args.
    internal static Func<Tensor?[], Tensor[]> Of<TArgs>(IArrayFunction<TArgs> function, TArgs args)
    {
        ArgumentNullException.ThrowIfNull(function);
        return inputs => function.ApplyArray(inputs, args);
    }

    // A function of one tensor.
    internal static Func<Tensor?[], Tensor[]> Of(Func<Tensor, Tensor> function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return inputs => new[] { function(Required(inputs, 0)) };
    }

    // A function of two tensors.
    internal static Func<Tensor?[], Tensor[]> Of(Func<Tensor, Tensor, Tensor> function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return inputs => new[] { function(Required(inputs, 0), Required(inputs, 1)) };
    }

    private static Tensor Required(Tensor?[] inputs, int i) =>
        inputs[i] ?? throw new ArgumentNullException(nameof(inputs), $"input {i} is null, but the function takes a tensor there.");
}
