// SPDX-License-Identifier: MIT
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Benchmarks;

/// <summary>
/// The custom functions under test, written once with CustomAutograd and once with TorchSharp 0.107's own
/// <c>torch.autograd.SingleTensorFunction</c>, with the same tensor operations in both.
/// </summary>
public static class Functions
{
    /// <summary>Identity: forward clones, backward passes the incoming gradient through unchanged.</summary>
    public static UnaryFunction Identity { get; } = AutogradFunction.Create(
        "Identity",
        forward: static (ctx, input) => input.clone(),
        backward: static (ctx, grad) => grad);

    /// <summary>ReLU: forward saves the input and clamps; backward masks the gradient where the input is negative.</summary>
    public static UnaryFunction Relu { get; } = AutogradFunction.Create(
        "MyReLU",
        forward: static (ctx, input) =>
        {
            ctx.SaveForBackward(input);
            return input.clamp_min(0);
        },
        backward: static (ctx, grad) => grad.masked_fill(ctx.SavedTensors[0]! < 0, 0));

    /// <summary>TorchSharp's <c>Function.apply</c> for the identity.</summary>
    /// <param name="x">The input.</param>
    /// <returns>The output.</returns>
    public static Tensor TorchSharpIdentity(Tensor x) => TorchSharpIdentityFunction.apply(x);

    /// <summary>TorchSharp's <c>Function.apply</c> for the ReLU.</summary>
    /// <param name="x">The input.</param>
    /// <returns>The output.</returns>
    public static Tensor TorchSharpRelu(Tensor x) => TorchSharpReluFunction.apply(x);
}

/// <summary>The identity as a TorchSharp 0.107 <c>SingleTensorFunction</c> (its backward must never throw: it would end the process).</summary>
public sealed class TorchSharpIdentityFunction : torch.autograd.SingleTensorFunction<TorchSharpIdentityFunction>
{
    /// <inheritdoc/>
    public override string Name => "TorchSharpIdentity";

    /// <inheritdoc/>
    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars) => ((Tensor)vars[0]).clone();

    /// <inheritdoc/>
    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output) => new() { grad_output };
}

/// <summary>The ReLU as a TorchSharp 0.107 <c>SingleTensorFunction</c>.</summary>
public sealed class TorchSharpReluFunction : torch.autograd.SingleTensorFunction<TorchSharpReluFunction>
{
    /// <inheritdoc/>
    public override string Name => "TorchSharpReLU";

    /// <inheritdoc/>
    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var input = (Tensor)vars[0];
        ctx.save_for_backward(new List<Tensor> { input });
        return input.clamp_min(0);
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output)
    {
        Tensor input = ctx.get_saved_variables()[0];
        return new() { grad_output.masked_fill(input < 0, 0) };
    }
}
