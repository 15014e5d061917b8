// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Graph;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// Every function form that <see cref="GradCheck"/> and <see cref="GradGradCheck"/> accept, as the one delegate
/// their core checks: an array of inputs (nulls kept) to an array of outputs.
/// </summary>
internal static class FunctionForms
{
    /// <summary>A custom function of any form without typed arguments.</summary>
    internal static Func<Tensor?[], Tensor[]> Of(IArrayFunction function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return function.ApplyArray;
    }

    /// <summary>A custom function with typed arguments, bound to <paramref name="args"/>.</summary>
    internal static Func<Tensor?[], Tensor[]> Of<TArgs>(IArrayFunction<TArgs> function, TArgs args)
    {
        ArgumentNullException.ThrowIfNull(function);
        return inputs => function.ApplyArray(inputs, args);
    }

    /// <summary>A function of one tensor.</summary>
    internal static Func<Tensor?[], Tensor[]> Of(Func<Tensor, Tensor> function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return inputs => new[] { function(Required(inputs, 0)) };
    }

    /// <summary>A function of two tensors.</summary>
    internal static Func<Tensor?[], Tensor[]> Of(Func<Tensor, Tensor, Tensor> function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return inputs => new[] { function(Required(inputs, 0), Required(inputs, 1)) };
    }

    private static Tensor Required(Tensor?[] inputs, int i) =>
        inputs[i] ?? throw new ArgumentNullException(nameof(inputs), $"input {i} is null, but the function takes a tensor there.");
}
