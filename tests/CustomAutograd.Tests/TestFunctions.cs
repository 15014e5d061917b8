// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.TorchSharpInternals;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>
/// The shapes the tests' custom functions share, written once: a function that saves its output and computes its
/// gradient from it (sigmoid, tanh, softmax), one that saves its input (ReLU, x^3), one of two tensors that saves
/// both, and (a, b) -> (a + b, a * b). The functions themselves live in <see cref="TestUtil"/> and
/// <see cref="GradCheckTestFunctions"/>.
/// </summary>
internal static class TestFunctions
{
    /// <summary>y = forward(x), saved; the input's gradient is backward(g, y).</summary>
    internal static UnaryFunction SavingOutput(string name, Func<Tensor, Tensor> forward, Func<Tensor, Tensor, Tensor> backward,
                                               AutogradFunctionOptions? options = null) =>
        AutogradFunction.Create(
            name,
            (ctx, x) =>
            {
                Tensor y = forward(x);
                ctx.SaveForBackward(y);
                return y;
            },
            (ctx, g) => backward(g, ctx.SavedTensors[0]!),
            options);

    /// <summary>x saved, y = forward(x); the input's gradient is backward(g, x).</summary>
    internal static UnaryFunction SavingInput(string name, Func<Tensor, Tensor> forward, Func<Tensor, Tensor, Tensor> backward,
                                              AutogradFunctionOptions? options = null) =>
        AutogradFunction.Create(
            name,
            (ctx, x) =>
            {
                ctx.SaveForBackward(x);
                return forward(x);
            },
            (ctx, g) => backward(g, ctx.SavedTensors[0]!),
            options);

    /// <summary>a and b saved, y = forward(a, b); the inputs' gradients are backward(g, a, b).</summary>
    internal static BinaryFunction SavingInputs(string name, Func<Tensor, Tensor, Tensor> forward,
                                                Func<Tensor, Tensor, Tensor, (Tensor? GradA, Tensor? GradB)> backward) =>
        AutogradFunction.Create(
            name,
            (ctx, a, b) =>
            {
                ctx.SaveForBackward(a, b);
                return forward(a, b);
            },
            (ctx, g) => backward(g, ctx.SavedTensors[0]!, ctx.SavedTensors[1]!));

    /// <summary>(a, b) -> (a + b, a * b), a and b saved; the inputs' gradients are backward(grads, a, b).</summary>
    internal static MultiFunction SumAndProduct(string name, Func<Tensor?[], Tensor, Tensor, Tensor?[]> backward,
                                                AutogradFunctionOptions? options = null) =>
        AutogradFunction.CreateMulti(
            name,
            (ctx, xs) =>
            {
                ctx.SaveForBackward(xs[0], xs[1]);
                return new[] { xs[0]!.add(xs[1]!, KeptScalars.One), xs[0]! * xs[1]! };
            },
            (ctx, gs) => backward(gs, ctx.SavedTensors[0]!, ctx.SavedTensors[1]!),
            options);
}
