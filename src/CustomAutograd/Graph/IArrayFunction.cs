// SPDX-License-Identifier: MIT
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

/// <summary>
/// A function form applied to an array of inputs (nulls where the form allows them), so that tools such as
/// gradient checking treat every form alike.
/// </summary>
internal interface IArrayFunction
{
    /// <summary>The number of tensor inputs the form takes, or -1 for any number.</summary>
    int InputCount { get; }

    Tensor[] ApplyArray(Tensor?[] inputs);
}

/// <summary>A typed-arguments function form applied to an array of inputs.</summary>
/// <typeparam name="TArgs">The arguments' type.</typeparam>
internal interface IArrayFunction<in TArgs>
{
    /// <summary>The number of tensor inputs the form takes, or -1 for any number.</summary>
    int InputCount { get; }

    Tensor[] ApplyArray(Tensor?[] inputs, TArgs args);
}
