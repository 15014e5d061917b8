// SPDX-License-Identifier: MIT
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// A function form applied to an array of inputs (nulls where the form allows them), so that tools such as
// gradient checking treat every form alike.
internal interface IArrayFunction
{
    // The number of tensor inputs the form takes, or -1 for any number.
    int InputCount { get; }

    Tensor[] ApplyArray(Tensor?[] inputs);
}

// A typed-arguments function form applied to an array of inputs.
// TArgs: The arguments' type.
internal interface IArrayFunction<in TArgs>
{
    // The number of tensor inputs the form takes, or -1 for any number.
    int InputCount { get; }

    Tensor[] ApplyArray(Tensor?[] inputs, TArgs args);
}
